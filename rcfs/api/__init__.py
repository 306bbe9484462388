"""RingCentral API client core: scheduler, auth, transport. Knows nothing of FUSE."""

from rcfs.api.auth import (
    Credentials,
    TokenManager,
    authorize_url,
    login_with_browser,
    make_pkce,
)
from rcfs.api.client import RcClient, default_media_url
from rcfs.api.errors import (
    ApiError,
    AuthRequiredError,
    BudgetExhaustedError,
    DeadlineExceededError,
    ForeignHostError,
    LoginError,
    RateLimitedError,
    RcError,
    TransportError,
)
from rcfs.api.groups import group_for
from rcfs.api.scheduler import DEFAULT_LIMITS, Priority, RequestScheduler
from rcfs.api.tokenstore import TokenSet, TokenStore, state_dir
from rcfs.api.transport import HttpCore, Timeouts

__all__ = [
    "DEFAULT_LIMITS",
    "ApiError",
    "AuthRequiredError",
    "BudgetExhaustedError",
    "Credentials",
    "DeadlineExceededError",
    "ForeignHostError",
    "HttpCore",
    "LoginError",
    "Priority",
    "RateLimitedError",
    "RcClient",
    "RcError",
    "RequestScheduler",
    "Timeouts",
    "TokenManager",
    "TokenSet",
    "TokenStore",
    "TransportError",
    "authorize_url",
    "default_media_url",
    "group_for",
    "login_with_browser",
    "make_pkce",
    "state_dir",
]
