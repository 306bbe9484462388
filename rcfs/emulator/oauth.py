"""OAuth 2.0 as RingCentral runs it (docs/ringcentral.md §2, §13 B).

Sessions are created by the JWT and authorization-code grants; refresh tokens are single-use
with the documented grace behaviour; revoking any token kills its whole session; a 6th session
for the same user and app ends the oldest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from rcfs.emulator.clock import Clock
from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.errors import ApiError, oauth_error, rc_error, unauthorized

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALL_SCOPES = (
    "ReadAccounts ReadMessages EditMessages ReadCallLog ReadCallRecording SMS Faxes "
    "EditExtensions ReadPresence WebSocket CallControl"
)
LIMITED_SCOPES = "ReadAccounts ReadMessages EditMessages SMS Faxes"


@dataclass
class App:
    client_id: str
    secret: str | None
    grants: frozenset[str]
    scopes: str
    redirect_uris: list[str] = field(default_factory=list)


@dataclass(eq=False)
class AccessToken:
    value: str
    session: Session
    expires_at: float
    first_used: float | None = None
    superseded_at: float | None = None


@dataclass(eq=False)
class RefreshToken:
    value: str
    session: Session
    expires_at: float
    access: AccessToken
    used_at: float | None = None
    successor: tuple[AccessToken, RefreshToken] | None = None


@dataclass(eq=False)
class Session:
    id: str
    app: App
    owner_id: int
    created: float
    endpoint_id: str
    revoked: bool = False
    access_ttl: int = 3600
    refresh_ttl: int = 604800


@dataclass
class AuthCode:
    code: str
    app: App
    owner_id: int
    redirect_uri: str
    challenge: str | None
    method: str
    expires_at: float
    used: bool = False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenService:
    def __init__(self, config: EmulatorConfig, clock: Clock, seed: int) -> None:
        self.config = config
        self.clock = clock
        digest = hashlib.sha256(f"rcfs-emulator:{seed}".encode()).hexdigest()
        self._jwt_key = digest.encode()
        self.server_app = App(
            f"emuSrv{digest[:16]}", f"sec{digest[16:40]}",
            frozenset({JWT_GRANT, "authorization_code", "refresh_token"}), ALL_SCOPES,
        )
        self.public_app = App(
            f"emuPub{digest[40:56]}", None,
            frozenset({"authorization_code", "refresh_token"}), ALL_SCOPES,
            list(config.redirect_uris),
        )
        self.limited_app = App(
            f"emuLim{digest[8:24]}", f"sec{digest[24:48]}",
            frozenset({JWT_GRANT, "refresh_token"}), LIMITED_SCOPES,
        )
        self.apps = {a.client_id: a for a in (self.server_app, self.public_app, self.limited_app)}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.sessions: list[Session] = []

    # -- credentials -------------------------------------------------------------------------

    def make_jwt(self, owner_id: int) -> str:
        """A JWT credential as the Developer Console would issue it (non-expiring)."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"sub": str(owner_id), "iss": "rcfs-emulator"}).encode())
        sig = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(sig)}"

    def jwt_owner(self, assertion: str) -> int | None:
        try:
            header, payload, sig = assertion.split(".")
            want = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256)
            if not hmac.compare_digest(_unb64(sig), want.digest()):
                return None
            return int(json.loads(_unb64(payload))["sub"])
        except (ValueError, KeyError, TypeError):
            return None

    def authenticate_client(self, basic: str | None, form: dict[str, str]) -> App:
        """Basic header for confidential apps, ``client_id`` in the body for public ones."""
        if basic is not None:
            try:
                cid, _, secret = base64.b64decode(basic, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise oauth_error(
                    400, "invalid_client", "Invalid Authorization header value", "OAU-123"
                ) from None
            app = self.apps.get(cid)
            if app is None or app.secret is None or not hmac.compare_digest(app.secret, secret):
                raise oauth_error(401, "invalid_client", "Invalid client", "OAU-153")
            return app
        body_cid = form.get("client_id")
        if not body_cid:
            raise oauth_error(
                400, "invalid_client", "Client authentication is required", "OAU-123"
            )
        app = self.apps.get(body_cid)
        if app is None:
            raise oauth_error(400, "invalid_client", "Invalid client", "OAU-153")
        if app.secret is not None:
            raise oauth_error(
                400, "invalid_client", "Client authentication is required", "OAU-123"
            )
        return app

    # -- sessions ----------------------------------------------------------------------------

    def _new_session(self, app: App, owner_id: int, form: dict[str, str]) -> Session:
        now = self.clock.now()
        live = [s for s in self.sessions
                if not s.revoked and s.app is app and s.owner_id == owner_id]
        while len(live) >= self.config.max_sessions:
            live.pop(0).revoked = True
        session = Session(
            id=secrets.token_hex(8), app=app, owner_id=owner_id, created=now,
            endpoint_id=form.get("endpoint_id") or _b64(secrets.token_bytes(16)),
        )
        session.access_ttl = self._clamp_access(form.get("access_token_ttl"))
        session.refresh_ttl = self._clamp_refresh(form.get("refresh_token_ttl"))
        self.sessions.append(session)
        return session

    def _clamp_access(self, value: str | None) -> int:
        if not value:
            return self.config.access_ttl
        try:
            return min(3600, max(600, int(value)))
        except ValueError:
            return self.config.access_ttl

    def _clamp_refresh(self, value: str | None) -> int:
        if not value:
            return self.config.refresh_ttl
        try:
            return min(self.config.max_refresh_ttl, max(1, int(value)))
        except ValueError:
            return self.config.refresh_ttl

    def _issue(self, session: Session) -> tuple[AccessToken, RefreshToken]:
        now = self.clock.now()
        access = AccessToken("U0FK" + secrets.token_urlsafe(32), session,
                             now + session.access_ttl)
        refresh = RefreshToken("U1JF" + secrets.token_urlsafe(32), session,
                               now + session.refresh_ttl, access)
        self.access[access.value] = access
        self.refresh[refresh.value] = refresh
        return access, refresh

    def token_body(self, access: AccessToken, refresh: RefreshToken) -> dict[str, Any]:
        now = self.clock.now()
        s = access.session
        return {
            "access_token": access.value,
            "token_type": "bearer",
            "expires_in": max(0, int(access.expires_at - now)),
            "refresh_token": refresh.value,
            "refresh_token_expires_in": max(0, int(refresh.expires_at - now)),
            "scope": s.app.scopes,
            "owner_id": str(s.owner_id),
            "endpoint_id": s.endpoint_id,
            "session_id": s.id,
        }

    # -- grants ------------------------------------------------------------------------------

    def owner_hint(self, form: dict[str, str]) -> str:
        """Which user a token request is for, to key the Auth-group rate limit."""
        grant = form.get("grant_type", "")
        if grant == JWT_GRANT:
            owner = self.jwt_owner(form.get("assertion", ""))
            return str(owner) if owner else "anonymous"
        if grant == "refresh_token":
            rt = self.refresh.get(form.get("refresh_token", ""))
            return str(rt.session.owner_id) if rt else "anonymous"
        if grant == "authorization_code":
            code = self.codes.get(form.get("code", ""))
            return str(code.owner_id) if code else "anonymous"
        return "anonymous"

    def grant(self, app: App, form: dict[str, str], known_owner: Any) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant not in (JWT_GRANT, "authorization_code", "refresh_token"):
            raise oauth_error(400, "invalid_request", "Unsupported grant type", "OAU-250")
        if grant not in app.grants:
            raise oauth_error(
                400, "unauthorized_client", "Unauthorized for this grant type", "OAU-251"
            )
        if grant == JWT_GRANT:
            owner = self.jwt_owner(form.get("assertion", ""))
            if owner is None or not known_owner(owner):
                raise oauth_error(
                    400, "invalid_grant", "Invalid resource owner credentials", "OAU-140"
                )
            return self.token_body(*self._issue(self._new_session(app, owner, form)))
        if grant == "authorization_code":
            return self._grant_code(app, form)
        return self._grant_refresh(app, form)

    def _grant_code(self, app: App, form: dict[str, str]) -> dict[str, Any]:
        now = self.clock.now()
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used:
            raise oauth_error(400, "invalid_grant", "Invalid authorization code", "OAU-106")
        if code.app is not app:
            raise oauth_error(
                400, "invalid_grant", "Authorization code was not issued for this client",
                "OAU-110",
            )
        if now > code.expires_at:
            code.used = True
            raise oauth_error(400, "invalid_grant", "Authorization code is expired", "OAU-108")
        if form.get("redirect_uri") != code.redirect_uri:
            code.used = True
            raise oauth_error(400, "invalid_grant", "Redirect URIs do not match", "OAU-109")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if code.method == "S256":
                got = _b64(hashlib.sha256(verifier.encode()).digest())
            else:
                got = verifier
            if not verifier or not hmac.compare_digest(got, code.challenge):
                code.used = True
                raise oauth_error(400, "invalid_grant", "Invalid code verifier", "OAU-106")
        code.used = True
        return self.token_body(*self._issue(self._new_session(app, code.owner_id, form)))

    def _grant_refresh(self, app: App, form: dict[str, str]) -> dict[str, Any]:
        now = self.clock.now()
        rt = self.refresh.get(form.get("refresh_token", ""))
        if rt is None or rt.session.revoked or rt.session.app is not app:
            raise oauth_error(400, "invalid_grant", "Token not found", "OAU-213")
        if now > rt.expires_at:
            raise oauth_error(400, "invalid_grant", "Token expired", "OAU-210")
        if rt.used_at is None or rt.successor is None:
            rt.used_at = now
            if rt.access.superseded_at is None:
                rt.access.superseded_at = now
            new_access, new_refresh = self._issue(rt.session)
            rt.successor = (new_access, new_refresh)
            return self.token_body(new_access, new_refresh)
        # A reused refresh token: the grace window answers with the same successor pair.
        new_access, new_refresh = rt.successor
        if new_refresh.used_at is None and new_access.superseded_at is None:
            if new_access.first_used is None:
                if now - rt.used_at <= self.config.refresh_grace_unused:
                    return self.token_body(new_access, new_refresh)
            elif now - new_access.first_used <= self.config.refresh_grace_used:
                return self.token_body(new_access, new_refresh)
        raise oauth_error(400, "invalid_grant", "Token not found", "OAU-213")

    # -- authorize ---------------------------------------------------------------------------

    def authorize(self, params: dict[str, str], owner_id: int) -> str:
        """Auto-consent: returns the Location to redirect the browser to."""
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise oauth_error(400, "invalid_client", "Invalid client", "OAU-153")
        if params.get("response_type") != "code":
            raise oauth_error(
                400, "unsupported_response_type", "Unsupported response type", "OAU-250"
            )
        redirect = params.get("redirect_uri", "")
        if not app.redirect_uris:
            raise oauth_error(
                400, "invalid_request", "No redirect uri is registered for the client", "OAU-113"
            )
        if redirect not in app.redirect_uris:
            raise oauth_error(400, "invalid_request", "Redirect URIs do not match", "OAU-109")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method") or "plain"
        code = AuthCode(
            "U0FD" + secrets.token_urlsafe(24), app, owner_id, redirect, challenge, method,
            self.clock.now() + self.config.code_ttl,
        )
        self.codes[code.code] = code
        from urllib.parse import urlencode

        query = {"code": code.code, "expires_in": str(int(self.config.code_ttl))}
        if "state" in params:
            query["state"] = params["state"]
        sep = "&" if "?" in redirect else "?"
        return f"{redirect}{sep}{urlencode(query)}"

    # -- revoke ------------------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        found: AccessToken | RefreshToken | None = self.access.get(token) or self.refresh.get(token)
        if found is not None:
            found.session.revoked = True

    def revoke_owner(self, owner_id: int | None = None) -> int:
        """Admin knob: end every session (of one user), as a password change would."""
        n = 0
        for s in self.sessions:
            if not s.revoked and (owner_id is None or s.owner_id == owner_id):
                s.revoked = True
                n += 1
        return n

    # -- bearer checks -----------------------------------------------------------------------

    def check_bearer(self, value: str) -> Session:
        """Validate an access token presented on an API call; 401 bodies as observed."""
        now = self.clock.now()
        tok = self.access.get(value)
        if tok is None:
            raise rc_error(
                401, "OAU-149", "OAuth token is invalid", top_code="TokenInvalid"
            )
        if tok.session.revoked:
            raise unauthorized("OAU-213", "Token not found", top_code="TokenInvalid")
        if tok.superseded_at is not None:
            if now - tok.superseded_at < self.config.corrupted_window:
                raise unauthorized("OAU-129", "Access token corrupted", top_code="TokenInvalid")
            raise unauthorized("OAU-213", "Token not found", top_code="TokenInvalid")
        if now >= tok.expires_at:
            raise unauthorized("OAU-128", "Access token expired", top_code="TokenExpired")
        if tok.first_used is None:
            tok.first_used = now
        return tok.session


def bad_media_type() -> ApiError:
    return oauth_error(
        415, "invalid_request", "Unsupported Media Type: use application/x-www-form-urlencoded",
        "CMN-415",
    )
