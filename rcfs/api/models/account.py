"""The account, its extensions and their phone numbers (``GET …/account/~``, ``…/extension``,
``…/phone-number``)."""

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
class Account:
    """``GET /restapi/v1.0/account/~``."""

    id: str
    uri: str | None = None
    main_number: str | None = None
    status: str | None = None
    name: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_account(d: Any) -> Account:
    d = json_object(d, "account")
    service = opt_map(d.get("serviceInfo"))
    name = opt_str(d.get("name")) or opt_str(d.get("companyName")) or opt_str(
        opt_map(service.get("brand")).get("name"))
    return Account(
        id=req_id(d, "id", "account"),
        uri=opt_str(d.get("uri")),
        main_number=opt_str(d.get("mainNumber")),
        status=opt_str(d.get("status")),
        name=name,
        raw=d,
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
