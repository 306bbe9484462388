"""The rules of tests/openapi_check.py besides RingCentral's spec: where the spec file is, the
hand-written schemas for what spec46 lacks or gets wrong (docs/ringcentral.md §2.6, §2.9,
§4.1), the paths outside the spec, and ``ALLOW``, the known spec46 defects with the reason
for each.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A gzipped copy of RingCentral's official spec v1.0.46 (docs/ringcentral.md §0) ships with
# the tests so CI on a fresh clone validates against exactly the same document.
SPEC_FILE = Path(os.environ.get("RCFS_OPENAPI_SPEC")
                 or Path(__file__).resolve().parent / "data" / "openapi3.json.gz")
SPEC_HOST = "https://platform.ringcentral.com"

# application/json and application/*+json (the batch multipart+json).
JSON_RE = re.compile(r"^application/([\w.+-]*\+)?json$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
TS_OK = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Legacy symbolic top-level codes (docs/ringcentral.md §4.1); TokenExpired (around OAU-128) is the
# emulator's choice, by analogy with TokenInvalid.
LEGACY_TOP_CODES = {"InsufficientPermissions", "TokenInvalid", "TokenExpired"}
RATE_HEADERS = ("x-rate-limit-group", "x-rate-limit-limit", "x-rate-limit-remaining",
                "x-rate-limit-window")
CONTENT_OPS = {"readMessageContent", "listCallRecordingData", "readIVRPromptContent",
               "readMessageStoreReportArchiveContent", "readGreetingContent",
               "readCompanyGreetingContent"}


# -- hand-written schemas (docs/ringcentral.md) -------------------------------------------------

_ERROR_ENTRY = {
    "type": "object",
    "required": ["errorCode", "message"],
    "properties": {
        "errorCode": {"type": "string", "minLength": 1},
        "message": {"type": "string"},
        "parameterName": {"type": "string"},
        "parameterValue": {"type": "string"},
        "permissionName": {"type": "string"},
        "additionalInfo": {"type": "object"},
    },
    "additionalProperties": False,
}
# §4.1: top-level errorCode + message mirror errors[0]; optional extra attributes.
RC_ERROR_SCHEMA = {
    "type": "object",
    "required": ["errorCode", "message", "errors"],
    "properties": {
        "errorCode": {"type": "string", "minLength": 1},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": _ERROR_ENTRY},
        "parameterName": {"type": "string"},
        "parameterValue": {"type": "string"},
        "permissionName": {"type": "string"},
    },
    "additionalProperties": False,
}
# §2.9: token-endpoint errors are OAuth fields plus RingCentral's errors[].
OAUTH_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "error_description", "errors"],
    "properties": {
        "error": {"enum": ["invalid_request", "invalid_client", "invalid_grant",
                           "unauthorized_client", "unsupported_grant_type", "invalid_scope",
                           "unsupported_response_type", "access_denied", "server_error",
                           "temporarily_unavailable"]},
        "error_description": {"type": "string"},
        "errors": {"type": "array", "minItems": 1, "items": _ERROR_ENTRY},
    },
    "additionalProperties": False,
}
# §2.6 (spec48 TokenInfo + the newer optional session fields from ext).
TOKEN_SCHEMA = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string", "minLength": 1},
        "token_type": {"enum": ["bearer"]},
        "expires_in": {"type": "integer", "minimum": 0},
        "refresh_token": {"type": "string", "minLength": 1},
        "refresh_token_expires_in": {"type": "integer", "minimum": 0},
        "scope": {"type": "string"},
        "owner_id": {"type": "string", "pattern": "^[0-9]+$"},
        "endpoint_id": {"type": "string"},
        "id_token": {"type": "string"},
        "session_id": {"type": "string"},
        "session_expires_in": {"type": "integer"},
        "session_expiration_time": {"type": "string"},
        "session_idle_timeout": {"type": "integer"},
    },
    "additionalProperties": False,
}
# docs/ringcentral.md §12.1: the ext spec's WsTokenResponse.
WSTOKEN_SCHEMA = {
    "type": "object",
    "required": ["ws_access_token", "uri", "expires_in"],
    "properties": {"ws_access_token": {"type": "string"}, "uri": {"type": "string"},
                   "expires_in": {"type": "integer"}},
    "additionalProperties": False,
}
# §4.3 / docs batch-requests.md: 207 with Accept: application/vnd.ringcentral.multipart+json.
BATCH_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["resourceId", "status", "body"],
        "properties": {"resourceId": {"type": "string"}, "status": {"type": "integer"},
                       "body": {"type": "object"}},
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class NonSpecPath:
    """A path spec46 lacks, checked by hand: ``schema`` for 2xx JSON bodies (None: no body)."""

    method: str
    template: str
    op: str
    statuses: tuple[int, ...]
    schema: dict[str, Any] | None = None
    binary: bool = False
    reason: str = ""


NON_SPEC_PATHS = (
    NonSpecPath("POST", "/restapi/oauth/token", "getToken", (200,), TOKEN_SCHEMA,
                reason="spec48 only (docs/ringcentral.md §2.1, §2.6)"),
    NonSpecPath("POST", "/restapi/oauth/revoke", "revokeToken", (200,), None,
                reason="spec48 only (docs/ringcentral.md §2.8): 200 with an empty body"),
    NonSpecPath("POST", "/restapi/oauth/wstoken", "createWsToken", (200,), WSTOKEN_SCHEMA,
                reason="WebSocket token, newer spec only (docs/ringcentral.md §12.1)"),
    NonSpecPath("GET", "/restapi/oauth/authorize", "authorize", (302,), None,
                reason="browser login page (docs/ringcentral.md §2.4): 302 with Location"),
    NonSpecPath("GET",
                "/restapi/v1.0/account/{accountId}/extension/{extensionId}/greeting/"
                "{greetingId}/content", "readGreetingContent", (200, 206), None, True,
                reason="newer spec only (docs/ringcentral.md §1.1, §3.4)"),
    NonSpecPath("GET", "/restapi/v1.0/account/{accountId}/greeting/{greetingId}/content",
                "readCompanyGreetingContent", (200, 206), None, True,
                reason="newer spec only (docs/ringcentral.md §1.1, §3.4)"),
)


@dataclass(frozen=True)
class Allow:
    """An accepted deviation from spec46: ``op``/``where`` are fnmatch globs; ``where`` uses
    ``[]`` for every list index; ``message`` is a substring of the error."""

    op: str
    where: str
    message: str
    reason: str


# Every entry says why the *spec* is wrong (or incomplete) rather than the emulator.
ALLOW: tuple[Allow, ...] = (
    Allow("readMessageContent", "content-type", "",
          "spec46 declares only text/plain and image/tiff; voicemail/fax/MMS content is "
          "audio/mpeg, audio/x-wav, application/pdf, images (docs/ringcentral.md §6.2, §8)"),
    Allow("readMessage", "path.messageId", "",
          "batch GET takes a comma-separated id list in {messageId} (docs/ringcentral.md "
          "§5.1, E10); spec46 types it as a single integer"),
    Allow("readMessage", "content-type", "multipart/mixed",
          "a batch GET answers 207 multipart/mixed by default (docs/ringcentral.md §5.1, E10); "
          "spec46 declares only application/json"),
    Allow("*", "query.date*", "is not a 'date-time'",
          "query dates accept 2012-07-16, 2012-07-16T23:12, offsets, fractions "
          "(docs/ringcentral.md §9, K2); spec46 types them as strict date-time"),
    Allow("read*CallLog", "uri", "additional property",
          "the current spec's CallLogResponse has a top-level uri (ext/RingCentral.Net "
          "CallLogResponse); spec46 lacks it"),
    Allow("*AnsweringRule*", "*greetings[].custom.uri", "additional property",
          "RingCentral's CustomGreetingInfo carries uri (and contentUri) besides id (SDK "
          "definitions generated from the older spec); spec46 lists only id"),
    Allow("readMessageStoreReportTask", "startTime", "additional property",
          "the export docs' task samples carry startTime once running (docs/ringcentral.md §5.7); "
          "spec46's MessageStoreReport lacks it"),
    Allow("readMessageStoreReportTask", "finishTime", "additional property",
          "the export docs' task samples carry finishTime once final (docs/ringcentral.md §5.7); "
          "spec46's MessageStoreReport lacks it"),
)
