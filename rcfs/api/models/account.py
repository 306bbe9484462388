"""The account's extensions and their phone numbers (``…/account/~/extension``,
``…/extension/{id}``, ``…/extension/{id}/phone-number``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rcfs.api.models.values import (
    ModelError,
    Raw,
    json_object,
    opt_bool,
    opt_id,
    opt_list,
    opt_map,
    opt_str,
    req_id,
)


@dataclass(frozen=True, slots=True)
class Extension:
    """An extension (user, call queue, ...) from ``…/extension`` or ``…/extension/~``."""

    id: str
    number: str | None
    name: str | None
    type: str | None
    status: str | None
    is_admin: bool
    uri: str | None = None
    account_id: str | None = None
    email: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_extension(d: Any) -> Extension:
    d = json_object(d, "extension")
    contact = opt_map(d.get("contact"))
    name = opt_str(d.get("name"))
    if not name:
        full = " ".join(
            p for p in (opt_str(contact.get("firstName")), opt_str(contact.get("lastName"))) if p)
        name = full or None
    admin = opt_bool(opt_map(opt_map(d.get("permissions")).get("admin")).get("enabled"))
    return Extension(
        id=req_id(d, "id", "extension"),
        number=opt_str(d.get("extensionNumber")),
        name=name,
        type=opt_str(d.get("type")),
        status=opt_str(d.get("status")),
        is_admin=bool(admin),
        uri=opt_str(d.get("uri")),
        account_id=opt_id(opt_map(d.get("account")).get("id")),
        email=opt_str(contact.get("email")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A number of an extension; ``features`` tells whether it may send SMS/MMS."""

    number: str
    features: tuple[str, ...] = ()
    id: str | None = None
    usage_type: str | None = None
    type: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def can_send_sms(self) -> bool:
        return "SmsSender" in self.features or "A2PSmsSender" in self.features

    @property
    def can_send_mms(self) -> bool:
        return "MmsSender" in self.features


def parse_phone_number(d: Any) -> PhoneNumber:
    d = json_object(d, "phone number")
    number = opt_str(d.get("phoneNumber"))
    if not number:
        raise ModelError(f"phone number without 'phoneNumber': {dict(d)!r}"[:400])
    return PhoneNumber(
        number=number,
        features=tuple(f for f in (opt_str(x) for x in opt_list(d.get("features"))) if f),
        id=opt_id(d.get("id")),
        usage_type=opt_str(d.get("usageType")),
        type=opt_str(d.get("type")),
        raw=d,
    )
