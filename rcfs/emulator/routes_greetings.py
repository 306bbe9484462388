"""Answering rules, custom greetings and greeting upload (docs/ringcentral.md §5.6, §7.4,
§13 J1, I11).

RingCentral has no endpoint that lists an extension's custom greetings: a client walks the
answering rules and reads each rule's ``greetings[]``. The emulator reproduces exactly that
path, so rcfs's greeting discovery is tested the way it must work against production.

Choices not settled by any source, marked (I):
* Every user extension has ``business-hours-rule`` and ``after-hours-rule``; if the seed gave
  an extension no rules, these two are created on first use with preset greetings.
* Upload without a ``binary`` part -> 400 CMN-100 (``binary``); a part declared as audio but
  whose bytes are not the declared audio format -> 400 AWR-129.
* ``apply=false`` with a rule id stores the greeting without linking it to the rule.
* A part without ``Content-Type`` (or ``application/octet-stream``) is judged by its bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import (
    Caller,
    Emulator,
    emulator_of,
    int_param,
    json_response,
)
from rcfs.emulator.errors import ApiError, invalid_param, not_found, rc_error
from rcfs.emulator.media import sniff_content_type
from rcfs.emulator.multipart import MultipartError, Part, parse_multipart
from rcfs.emulator.origin import content_uri
from rcfs.emulator.paging import page_of
from rcfs.emulator.seed_data import GREETING_PRESETS
from rcfs.emulator.store import AnsweringRule, Blob, Extension, Greeting, SentItem

GREETING_TYPES = ("Introductory", "Announcement", "ConnectingMessage", "ConnectingAudio",
                  "Voicemail", "Unavailable", "HoldMusic", "TemplateGreeting")
# Declared part types accepted for an upload, mapped to what the greeting then reports.
AUDIO_TYPES = {"audio/wav": "audio/wav", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav",
               "audio/vnd.wave": "audio/wav", "audio/mpeg": "audio/mpeg",
               "audio/mp3": "audio/mpeg", "audio/mpeg3": "audio/mpeg"}
UNDECLARED = ("application/octet-stream",)
# Dictionary (preset) greetings: the ones the seed puts on answering rules.
PRESETS: dict[str, tuple[str, str]] = dict(GREETING_PRESETS)
DEFAULT_RULES = (("business-hours-rule", "BusinessHours"), ("after-hours-rule", "AfterHours"))


# -- answering rules -----------------------------------------------------------------------


def rules_of(emu: Emulator, ext: Extension) -> list[AnsweringRule]:
    """The extension's rules (business hours first, custom last); defaults on first use."""
    rules = [r for r in emu.store.rules.values() if r.extension_id == ext.id]
    if not rules and ext.type == "User":
        for rule_id, rtype in DEFAULT_RULES:
            greetings = [{"type": t, "preset": {"id": PRESETS[t][0], "name": PRESETS[t][1]}}
                         for t in ("Voicemail", "Introductory", "ConnectingAudio",
                                   "ConnectingMessage")]
            rule = AnsweringRule(rule_id, ext.id, rtype, "", True, greetings)
            emu.store.rules[f"{ext.id}/{rule_id}"] = rule
            rules.append(rule)
    order = {"BusinessHours": 0, "AfterHours": 1}
    return sorted(rules, key=lambda r: (order.get(r.type, 2), r.id))


def find_rule(emu: Emulator, ext: Extension, rule_id: str) -> AnsweringRule | None:
    for rule in rules_of(emu, ext):
        if rule.id == rule_id:
            return rule
    return None


def _preset_uri(emu: Emulator, preset_id: str) -> str:
    return f"{emu.platform_url}/restapi/v1.0/dictionary/greeting/{preset_id}"


def render_rule_greeting(emu: Emulator, ext: Extension, item: dict[str, Any]
                         ) -> dict[str, Any]:
    """A ``greetings[]`` entry: ``{type, custom:{id, uri}}`` or ``{type, preset:{…}}`` (J1)."""
    out: dict[str, Any] = {"type": item["type"]}
    custom_id = item.get("custom_id") or (item.get("custom") or {}).get("id")
    if custom_id is not None:
        out["custom"] = {"uri": emu.ext_uri(ext.id, f"/greeting/{custom_id}"),
                         "id": str(custom_id)}
        return out
    preset = dict(item.get("preset") or {})
    pid = str(preset.get("id") or PRESETS.get(item["type"], ("0", "None"))[0])
    out["preset"] = {"uri": preset.get("uri") or _preset_uri(emu, pid), "id": pid,
                     "name": preset.get("name") or "Default"}
    return out


def render_rule(emu: Emulator, ext: Extension, rule: AnsweringRule, detailed: bool = True
                ) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uri": emu.ext_uri(ext.id, f"/answering-rule/{rule.id}"),
        "id": rule.id,
        "type": rule.type,
    }
    if rule.name:
        data["name"] = rule.name
    data["enabled"] = rule.enabled
    if not detailed:
        return data
    if rule.type in ("BusinessHours", "AfterHours"):
        data["schedule"] = {"ref": rule.type}
    data["callHandlingAction"] = "TakeMessagesOnly" if rule.type == "AfterHours" \
        else "ForwardCalls"
    data["voicemail"] = {"enabled": True,
                         "recipient": {"uri": emu.ext_uri(ext.id), "id": ext.id}}
    data["greetings"] = [render_rule_greeting(emu, ext, g) for g in rule.greetings]
    return data


def _read_ext(emu: Emulator, caller: Caller, request: Request) -> Extension:
    p = request.path_params
    return emu.extension(caller, p["accountId"], p["extensionId"])


def _bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise invalid_param(name)


async def list_rules(request: Request) -> Response:
    """GET …/answering-rule (Medium): enumerated paging, Simple records by default."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="ReadAccounts")
    ext = _read_ext(emu, caller, request)
    q = request.query_params
    rtype = q.get("type")
    if rtype not in (None, "", "Custom"):
        raise invalid_param("type")
    view = q.get("view") or "Simple"
    if view not in ("Simple", "Detailed"):
        raise invalid_param("view")
    enabled_only = _bool(request, "enabledOnly", False)
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=1000, clamp=True)
    rules = [r for r in rules_of(emu, ext)
             if (not rtype or r.type == rtype) and (not enabled_only or r.enabled)]
    records = [render_rule(emu, ext, r, detailed=view == "Detailed") for r in rules]
    body = page_of(request, emu.ext_uri(ext.id, "/answering-rule"), records, page, per_page)
    return json_response(body)


async def get_rule(request: Request) -> Response:
    """GET …/answering-rule/{ruleId} (Light): the rule with its ``greetings[]`` (J1)."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadAccounts")
    ext = _read_ext(emu, caller, request)
    rule = find_rule(emu, ext, request.path_params["ruleId"])
    if rule is None:
        raise not_found("ruleId")
    return json_response(render_rule(emu, ext, rule))


# -- greetings -----------------------------------------------------------------------------


def greeting_content_uri(emu: Emulator, greeting: Greeting) -> str:
    from rcfs.emulator.routes_calllog import media_base

    return content_uri(emu, media_base(emu),
                       f"/restapi/v1.0/account/{emu.store.account_id}"
                       f"/extension/{greeting.extension_id}/greeting/{greeting.id}/content",
                       greeting.blob)


def render_greeting(emu: Emulator, greeting: Greeting) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uri": emu.ext_uri(greeting.extension_id, f"/greeting/{greeting.id}"),
        "id": greeting.id,
        "type": greeting.type,
        "contentType": greeting.blob.content_type,
        "contentUri": greeting_content_uri(emu, greeting),
    }
    if greeting.answering_rule_id:
        data["answeringRule"] = {
            "uri": emu.ext_uri(greeting.extension_id,
                               f"/answering-rule/{greeting.answering_rule_id}"),
            "id": greeting.answering_rule_id,
        }
    return data


async def get_greeting(request: Request) -> Response:
    """GET …/greeting/{greetingId} (Medium): metadata with a media-host ``contentUri``."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="ReadAccounts")
    ext = _read_ext(emu, caller, request)
    greeting = emu.store.greetings.get(request.path_params["greetingId"])
    if greeting is None or greeting.extension_id != ext.id:
        raise not_found("greetingId")
    return json_response(render_greeting(emu, greeting))


# -- upload --------------------------------------------------------------------------------


def _awr(code: str, message: str) -> ApiError:
    return rc_error(400, code, message)


def _json_part(parts: list[Part], mixed: bool) -> tuple[dict[str, Any] | None, Part | None]:
    """The request's JSON description and its part, wherever the client put it (§7.4)."""
    for i, part in enumerate(parts):
        declared = part.content_type
        looks_json = declared in ("application/json", "text/json") or (
            part.name in ("json", "request.json", "request") and part.filename is None)
        # multipart/mixed: an untyped first part (or the preamble) is the JSON envelope.
        if not looks_json and mixed and i == 0 and part.filename is None and declared in (
                None, "text/plain"):
            looks_json = part.data.lstrip()[:1] == b"{"
        if not looks_json:
            continue
        try:
            value = json.loads(part.text())
        except ValueError:
            raise rc_error(400, "CMN-103", "Unable to parse request body as JSON") from None
        if not isinstance(value, dict):
            raise rc_error(400, "CMN-103", "Unable to parse request body as JSON")
        return value, part
    return None, None


def _binary_part(parts: list[Part], envelope: Part | None) -> Part | None:
    for part in parts:
        if part.name == "binary":
            return part
    candidates = [p for p in parts if p is not envelope and not p.preamble
                  and p.filename is not None]
    return candidates[0] if candidates else None


def _audio_type(part: Part) -> str:
    """The greeting's content type; AWR-129 unless both the header and the bytes are audio."""
    declared = part.content_type
    sniffed = sniff_content_type(part.data)
    actual = AUDIO_TYPES.get(sniffed or "")
    if declared is None or declared in UNDECLARED:
        if actual is None:
            raise _awr("AWR-129", "Invalid attachment media type")
        return actual
    wanted = AUDIO_TYPES.get(declared)
    if wanted is None or actual != wanted:
        raise _awr("AWR-129", "Invalid attachment media type")
    return wanted


async def upload_greeting(request: Request) -> Response:
    """POST …/extension/{extensionId}/greeting (Heavy, EditExtensions): I11."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="EditExtensions")
    ext = _read_ext(emu, caller, request)
    apply = _bool(request, "apply", True)
    ctype = request.headers.get("content-type", "")
    mtype = ctype.split(";", 1)[0].strip().lower()
    if mtype not in ("multipart/form-data", "multipart/mixed"):
        raise rc_error(415, "CMN-415", "Unsupported Media Type")
    body = await request.body()
    try:
        parts = parse_multipart(ctype, body, keep_preamble=True)
    except MultipartError as exc:
        raise rc_error(400, "CMN-104", f"Cannot parse multipart request: {exc}") from None
    mixed = mtype == "multipart/mixed"
    envelope, envelope_part = _json_part(parts, mixed)
    fields: dict[str, Any] = dict(envelope or {})
    for part in parts:
        if part.filename is None and part.name in ("type", "answeringRuleId") \
                and part is not envelope_part:
            fields[part.name] = part.text().strip()
    gtype = fields.get("type")
    if not gtype:
        raise rc_error(400, "CMN-100", "Mandatory parameter [type] not specified",
                       parameterName="type")
    if gtype not in GREETING_TYPES:
        raise invalid_param("type")
    rule_id = fields.get("answeringRuleId")
    rule_obj = fields.get("answeringRule")
    if not rule_id and isinstance(rule_obj, dict):
        rule_id = rule_obj.get("id")
    rule_id = str(rule_id) if rule_id not in (None, "") else None
    rule: AnsweringRule | None = None
    if rule_id is not None:
        rule = find_rule(emu, ext, rule_id)
        if rule is None:
            raise not_found("answeringRule.id", status=400)
    if apply and rule is None:
        raise rc_error(400, "CMN-100", "Mandatory parameter [answeringRule] not specified",
                       parameterName="answeringRule")
    if apply and rule is not None and gtype == "HoldMusic" and rule.id != "business-hours-rule":
        raise _awr("AWR-165", "Hold music can be set for business hours rule only: the same "
                   "value will be applied to all rules")
    binary = _binary_part(parts, envelope_part)
    if binary is None:
        raise rc_error(400, "CMN-100", "Mandatory parameter [binary] not specified",
                       parameterName="binary")
    if not binary.data:
        raise _awr("AWR-128", "Attachment body is empty")
    content_type = _audio_type(binary)

    gid = str(emu.store.new_id())
    greeting = Greeting(gid, ext.id, gtype, Blob(content_type, data=binary.data),
                        rule.id if apply and rule is not None else None)
    emu.store.greetings[gid] = greeting
    if apply and rule is not None:
        item = {"type": gtype, "custom_id": gid}
        for i, existing in enumerate(rule.greetings):
            if existing.get("type") == gtype:
                rule.greetings[i] = item
                break
        else:
            rule.greetings.append(item)
    emu.store.sent.append(SentItem(
        kind="greeting", extension_id=ext.id, time=emu.clock.now(),
        request={"type": gtype, "answeringRuleId": rule_id, "apply": apply,
                 "content_type": mtype},
        attachments=[{"filename": binary.filename, "content_type": content_type,
                      "size": len(binary.data),
                      "sha256": hashlib.sha256(binary.data).hexdigest()}],
        result_id=gid, status=200,
    ))
    return json_response(render_greeting(emu, greeting))


# -- dictionary ----------------------------------------------------------------------------


async def dictionary_greetings(request: Request) -> Response:
    """GET /restapi/v1.0/dictionary/greeting (Medium): the presets rule entries point at."""
    emu = emulator_of(request)
    emu.api_call(request, "Medium")
    wanted_type = request.query_params.get("type")
    usage = request.query_params.get("usageType")
    if usage not in (None, "", "UserExtensionAnsweringRule"):
        records: list[dict[str, Any]] = []
    else:
        records = [_dictionary_record(emu, gtype, pid, name)
                   for gtype, (pid, name) in sorted(PRESETS.items(), key=lambda kv: kv[1][0])
                   if not wanted_type or gtype == wanted_type]
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=1000, clamp=True)
    base = f"{emu.platform_url}/restapi/v1.0/dictionary/greeting"
    return json_response(page_of(request, base, records, page, per_page))


async def dictionary_greeting(request: Request) -> Response:
    emu = emulator_of(request)
    emu.api_call(request, "Medium")
    wanted = request.path_params["greetingId"]
    for gtype, (pid, name) in PRESETS.items():
        if pid == wanted:
            return json_response(_dictionary_record(emu, gtype, pid, name))
    raise not_found("greetingId")


def _dictionary_record(emu: Emulator, gtype: str, pid: str, name: str) -> dict[str, Any]:
    """A standard greeting; its ``contentUri`` is a static file on the media host that the
    emulator does not serve (I: rcfs never downloads presets)."""
    data: dict[str, Any] = {
        "uri": _preset_uri(emu, pid), "id": pid, "name": name,
        "usageType": "UserExtensionAnsweringRule", "type": gtype,
    }
    if name == "None":
        data["category"] = "None"
    else:
        data["contentUri"] = (f"{emu.media_url}/greetings/en_US/1210/"
                              f"{name.lower().replace(' ', '-')}.wav")
        data["category"] = "Music" if gtype in ("ConnectingAudio", "HoldMusic") else "Message"
    return data


def routes() -> list[BaseRoute]:
    ext = "/restapi/v1.0/account/{accountId}/extension/{extensionId}"
    return [
        Route(ext + "/answering-rule", list_rules, methods=["GET"]),
        Route(ext + "/answering-rule/{ruleId}", get_rule, methods=["GET"]),
        Route(ext + "/greeting", upload_greeting, methods=["POST"]),
        Route(ext + "/greeting/{greetingId}", get_greeting, methods=["GET"]),
        Route("/restapi/v1.0/dictionary/greeting", dictionary_greetings, methods=["GET"]),
        Route("/restapi/v1.0/dictionary/greeting/{greetingId}", dictionary_greeting,
              methods=["GET"]),
    ]


__all__ = ["find_rule", "render_greeting", "render_rule", "routes", "rules_of"]
