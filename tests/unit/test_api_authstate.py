"""The login state for status: the action that fixes each auth error, and its one-line form
(``rcfs status``, systemd's STATUS=)."""

from __future__ import annotations

from rcfs.api.authstate import AuthState, action_for, auth_line
from rcfs.api.errors import ApiError, AuthRequiredError
from rcfs.api.tokenstore import TokenSet


def _api(status: int, code: str, top: str | None = None, **extra: str) -> ApiError:
    body = {"errorCode": top or code, "message": "m", "errors": [{"errorCode": code, **extra}],
            **extra}
    return ApiError(status, top or code, "m", body=body)


def test_actions_by_code() -> None:
    assert action_for(AuthRequiredError("session expired")) == "run rcfs login"
    assert action_for(_api(400, "OAU-213")) == "run rcfs login"
    assert action_for(_api(401, "OAU-213", "TokenInvalid")) == "run rcfs login"
    assert "jwt_file" in (action_for(_api(400, "OAU-140")) or "")
    assert "client_secret" in (action_for(_api(401, "OAU-146")) or "")
    assert action_for(_api(403, "CMN-401", "InsufficientPermissions",
                           permissionName="ReadCallRecording")) == (
        "the app lacks ReadCallRecording: add that permission to the app in the developer "
        "console")
    assert action_for(_api(404, "CMN-102")) is None
    assert action_for(_api(429, "CMN-301")) is None


def test_state_and_line() -> None:
    now = [1000.0]
    state = AuthState(lambda: now[0])
    ts = TokenSet("a", "r", expires_at=4600.0, refresh_expires_at=605000.0, owner_id="42")
    st = state.status(ts)
    assert st["logged_in"] and st["owner_id"] == "42" and st["last_error"] is None
    assert auth_line({**st, "user": "101 Alice"}).startswith("logged in as 101 Alice until ")
    state.note(_api(403, "CMN-401", "InsufficientPermissions", permissionName="ReadCallLog"))
    assert state.status(ts)["logged_in"]  # a missing permission is not a lost login
    now[0] += 1
    state.note(AuthRequiredError("session expired"))
    st = state.status(ts)
    assert not st["logged_in"] and st["last_error"]["action"] == "run rcfs login"
    line = auth_line(st)
    assert line.startswith("NOT logged in (was 42)") and line.endswith("run rcfs login")
    state.granted()  # a new session: the login error is over, the permission one is not
    st = state.status(ts)
    assert st["logged_in"] and "ReadCallLog" in st["last_error"]["action"]
    assert auth_line({}) == "login: unknown"
