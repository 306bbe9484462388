"""Account, extensions and phone numbers (docs/ringcentral.md §5.5, §13 A2, D5)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import Emulator, emulator_of, enum_param, int_param, iso, json_response
from rcfs.emulator.paging import page_of
from rcfs.emulator.store import Extension, PhoneNumber

EXT_TYPES = (
    "User", "Department", "Announcement", "Voicemail", "DigitalUser", "VirtualUser", "FaxUser",
    "PagingOnly", "SharedLinesGroup", "DelegatedLinesGroup", "GroupCallPickup", "IvrMenu",
    "ApplicationExtension", "ProxyAdmin", "RoomConnector", "ParkLocation", "Limited", "Bot",
    "Site", "Room", "FlexibleUser", "TieLine", "Unknown",
)
EXT_STATUSES = ("Enabled", "Disabled", "Frozen", "NotActivated", "Unassigned")


def render_extension(emu: Emulator, ext: Extension, detailed: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uri": emu.ext_uri(ext.id),
        "id": ext.id,
        "extensionNumber": ext.number,
        "name": ext.name,
        "type": ext.type,
        "status": ext.status,
        "contact": {"firstName": ext.first_name, "lastName": ext.last_name,
                    "email": ext.email},
        "permissions": {"admin": {"enabled": ext.admin},
                        "internationalCalling": {"enabled": False}},
        "hidden": False,
    }
    if detailed:
        data["account"] = {"uri": emu.account_uri(), "id": str(emu.store.account_id)}
        data["regionalSettings"] = {
            "timezone": {"id": "58", "name": "US/Eastern", "description": "Eastern Time",
                         "bias": "-300"},
            "homeCountry": {"id": "1", "isoCode": "US", "name": "United States",
                            "callingCode": "1"},
        }
        data["setupWizardState"] = "Completed"
    return data


def render_number(emu: Emulator, ext: Extension, num: PhoneNumber) -> dict[str, Any]:
    return {
        "uri": emu.ext_uri(ext.id, f"/phone-number/{num.id}"),
        "id": num.id,
        "phoneNumber": num.phone_number,
        "usageType": num.usage_type,
        "type": num.type,
        "paymentType": "Local",
        "status": "Normal",
        "country": {"id": "1", "isoCode": "US", "name": "United States"},
        "features": list(num.features),
    }


async def get_account(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadAccounts")
    emu.account(caller, request.path_params["accountId"])
    store = emu.store
    operator = next((e for e in store.extensions.values() if e.admin), None)
    data: dict[str, Any] = {
        "uri": emu.account_uri(),
        "id": store.account_id,
        "mainNumber": store.main_number,
        "status": "Confirmed",
        "serviceInfo": {"brand": {"id": "1210", "name": "RingCentral"}},
        "setupWizardState": "Completed",
        "signupInfo": {"tosAccepted": True},
        "regionalSettings": {"homeCountry": {"id": "1", "isoCode": "US"}},
    }
    if operator is not None:
        data["operator"] = {"uri": emu.ext_uri(operator.id), "id": operator.id,
                            "extensionNumber": operator.number}
    return json_response(data)


async def list_extensions(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="ReadAccounts")
    emu.account(caller, request.path_params["accountId"])
    types = enum_param(request, "type", EXT_TYPES)
    statuses = enum_param(request, "status", EXT_STATUSES)
    number = request.query_params.get("extensionNumber")
    exts = sorted(emu.store.extensions.values(), key=lambda e: e.number)
    exts = [e for e in exts
            if (not types or e.type in types) and (not statuses or e.status in statuses)
            and (number is None or e.number == number)]
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=1000, clamp=True)
    body = page_of(request, emu.account_uri("/extension"),
                   [render_extension(emu, e, detailed=False) for e in exts], page, per_page)
    return json_response(body)


async def get_extension(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadAccounts")
    p = request.path_params
    ext = _visible_extension(emu, caller, p["accountId"], p["extensionId"])
    return json_response(render_extension(emu, ext))


def _visible_extension(emu: Emulator, caller: Any, acc: str, ext_id: str) -> Extension:
    # Reading another extension's *profile* is allowed to everyone in the account; its
    # mailbox is not (CMN-419, enforced by the message-store routes).
    if ext_id != "~" and caller.is_admin is False:
        from rcfs.emulator.errors import not_found

        emu.account(caller, acc)
        try:
            ext = emu.store.extensions.get(int(ext_id))
        except ValueError:
            ext = None
        if ext is None:
            raise not_found("extensionId")
        return ext
    return emu.extension(caller, acc, ext_id)


async def list_phone_numbers(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadAccounts")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    usage = request.query_params.getlist("usageType")
    nums = [n for n in ext.phone_numbers if not usage or n.usage_type in usage]
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=1000, clamp=True)
    body = page_of(request, emu.ext_uri(ext.id, "/phone-number"),
                   [render_number(emu, ext, n) for n in nums], page, per_page)
    return json_response(body)


def routes() -> list[BaseRoute]:
    base = "/restapi/v1.0/account/{accountId}"
    return [
        Route(base, get_account, methods=["GET"]),
        Route(base + "/extension", list_extensions, methods=["GET"]),
        Route(base + "/extension/{extensionId}", get_extension, methods=["GET"]),
        Route(base + "/extension/{extensionId}/phone-number", list_phone_numbers,
              methods=["GET"]),
    ]


__all__ = ["iso", "render_extension", "render_number", "routes"]
