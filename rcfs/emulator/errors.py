"""RingCentral-shaped error responses (docs/ringcentral.md §4): ``errorCode`` + ``message``
mirroring ``errors[0]``, optional ``parameterName`` / ``permissionName``."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere in a handler; turned into the JSON error response by the app."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {body.get('errorCode') or body.get('error')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def rc_error(
    status: int,
    code: str,
    message: str,
    *,
    top_code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> ApiError:
    entry: dict[str, Any] = {"errorCode": code, "message": message, **extra}
    body: dict[str, Any] = {"errorCode": top_code or code, "message": message, "errors": [entry]}
    body.update(extra)
    return ApiError(status, body, headers)


def invalid_param(name: str, detail: str = "") -> ApiError:
    """CMN-101: a parameter value the API does not accept."""
    msg = f"Parameter [{name}] value is invalid."
    if detail:
        msg = f"Parameter [{name}] value is invalid. {detail}"
    return rc_error(400, "CMN-101", msg, parameterName=name)


def missing_param(name: str) -> ApiError:
    return rc_error(400, "CMN-100", f"Mandatory parameter [{name}] is not specified",
                    parameterName=name)


def not_found(param: str, status: int = 404) -> ApiError:
    """CMN-102: an id that does not exist (or no longer does)."""
    return rc_error(
        status, "CMN-102", f"Resource for parameter [{param}] is not found", parameterName=param
    )


def agw_404() -> ApiError:
    return ApiError(404, {"errorCode": "AGW-404", "message": "Resource not found", "errors": []})


def oauth_error(status: int, error: str, description: str, code: str) -> ApiError:
    """Token-endpoint errors carry OAuth fields plus RingCentral's ``errors[]``."""
    return ApiError(
        status,
        {
            "error": error,
            "error_description": description,
            "errors": [{"errorCode": code, "message": description}],
        },
    )


def unauthorized(code: str, message: str, *, top_code: str | None = None) -> ApiError:
    return rc_error(401, code, message, top_code=top_code)
