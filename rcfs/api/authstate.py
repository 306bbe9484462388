"""What ``rcfs status`` says about the login: who, until when, and the last auth error with
the action that fixes it.

A lost session otherwise shows only as EIO on every read; the user needs to know whether to
run ``rcfs login``, fix the app's permissions in the developer console or the client
credentials in the configuration. The action is keyed on RingCentral's error codes (the
OAuth ``error`` and ``errors[].errorCode``, docs/ringcentral.md §2.9 and §4.2), never on the
localised message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rcfs.api.errors import ApiError, AuthRequiredError, RcError
from rcfs.api.tokenstore import TokenSet

__all__ = ["AuthProblem", "AuthState", "action_for", "auth_line"]

LOGIN = "run rcfs login"
# (codes, action); the first row with a matching code wins.
_ACTIONS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"OAU-140"}),
     "the JWT credential was refused: create a new one in the developer console and update "
     "jwt_file"),
    (frozenset({"OAU-146", "OAU-153", "OAU-123", "invalid_client"}),
     "check client_id and client_secret in the configuration"),
    (frozenset({"OAU-251", "unauthorized_client", "OAU-250"}),
     "the app is not allowed this login (grant) type: enable it in the app's settings"),
    (frozenset({"OAU-147", "OAU-148"}),
     "the user is locked out after failed logins: wait, or ask the account's admin"),
    (frozenset({"OAU-105", "OAU-112", "OAU-116", "OAU-117"}),
     "this extension may not log in with this app: ask the account's admin"),
    (frozenset({"OAU-210", "OAU-211", "OAU-213", "invalid_grant", "OAU-128", "OAU-129",
                "OAU-149", "TokenInvalid"}), LOGIN),
)
PERMISSION_CODES = frozenset({"CMN-401", "InsufficientPermissions"})


def _permission_name(err: ApiError) -> str | None:
    body = err.body if isinstance(err.body, dict) else {}
    name = body.get("permissionName")
    for entry in body.get("errors") or []:
        if name is None and isinstance(entry, dict):
            name = entry.get("permissionName")
    return str(name) if name else None


def action_for(exc: RcError) -> str | None:
    """The action that fixes an auth or permission error; None when ``exc`` is neither."""
    if isinstance(exc, AuthRequiredError):
        return LOGIN
    if not isinstance(exc, ApiError):
        return None
    codes = exc.codes
    if codes & PERMISSION_CODES or (exc.status == 403 and _permission_name(exc)):
        perm = _permission_name(exc)
        return (f"the app lacks {perm}: add that permission to the app in the developer "
                f"console" if perm else "the app lacks a permission for this call")
    for known, action in _ACTIONS:
        if codes & known:
            return action
    return None


@dataclass(frozen=True)
class AuthProblem:
    """One auth or permission failure, as shown in ``status.json``."""

    code: str | None
    message: str
    action: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuthState:
    """The last login error (cleared by the next successful token grant) and every distinct
    permission error (kept: a permission does not come back by itself, and an app that
    lacks two permissions must show both, not whichever failed last)."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._now = wall_clock
        self.login_error: AuthProblem | None = None
        self.permission_errors: dict[str, AuthProblem] = {}

    @property
    def permission_error(self) -> AuthProblem | None:
        """The most recent permission error."""
        errors = self.permission_errors.values()
        return max(errors, key=lambda p: p.at) if errors else None

    def note(self, exc: RcError) -> AuthProblem | None:
        """Record ``exc`` if it is an auth/permission error; returns the record."""
        action = action_for(exc)
        if action is None:
            return None
        code = exc.error_code if isinstance(exc, ApiError) else None
        if isinstance(exc, ApiError) and exc.codes & PERMISSION_CODES:
            problem = AuthProblem(code, str(exc), action, self._now())
            self.permission_errors[action] = problem
            return problem
        problem = AuthProblem(code, str(exc), action, self._now())
        self.login_error = problem
        return problem

    def granted(self) -> None:
        self.login_error = None

    def status(self, tokens: TokenSet | None) -> dict[str, Any]:
        """``logged_in``, ``owner_id``, expiries, ``last_error`` (with its ``action``) and
        ``missing_permissions`` (the action for each permission the app was refused)."""
        now = self._now()
        errors = [p for p in (self.login_error, self.permission_error) if p is not None]
        last = max(errors, key=lambda p: p.at) if errors else None
        out: dict[str, Any] = {
            "logged_in": tokens is not None and self.login_error is None
            and (tokens.access_valid(now) or tokens.refresh_valid(now)),
            "owner_id": tokens.owner_id if tokens is not None else None,
            "expires_at": tokens.expires_at if tokens is not None else None,
            "refresh_expires_at": tokens.refresh_expires_at if tokens is not None else None,
            "last_error": last.as_dict() if last is not None else None,
            "missing_permissions": sorted(self.permission_errors),
        }
        return out


def auth_line(auth: dict[str, Any]) -> str:
    """The login in one line (``rcfs status`` and systemd's STATUS=)."""
    if not auth:
        return "login: unknown"
    who = auth.get("user") or auth.get("owner_id") or "?"
    err = auth.get("last_error")
    if auth.get("logged_in"):
        # The access token is renewed hourly; the session ends with the refresh token.
        expires = auth.get("refresh_expires_at") or auth.get("expires_at")
        until = (time.strftime(" until %Y-%m-%d %H:%M UTC", time.gmtime(float(expires)))
                 if expires else "")
        line = f"logged in as {who}{until}"
    else:
        line = f"NOT logged in (was {who})"
    if err:
        line += f"; last auth error {err.get('code') or ''}: {err.get('action')}"
    return line
