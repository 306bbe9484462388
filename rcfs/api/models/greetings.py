"""Answering rules and the custom greetings they name (there is no greeting list endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rcfs.api.models.values import (
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
class GreetingRef:
    """A ``greetings[]`` entry of an answering rule: a custom greeting id or a preset."""

    type: str | None
    custom_id: str | None = None
    preset_id: str | None = None
    preset_name: str | None = None
    preset_uri: str | None = None


@dataclass(frozen=True, slots=True)
class AnsweringRule:
    id: str
    name: str | None
    type: str | None
    greetings: tuple[GreetingRef, ...] = ()
    enabled: bool | None = None
    uri: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def custom_greeting_ids(self) -> tuple[str, ...]:
        return tuple(g.custom_id for g in self.greetings if g.custom_id)


def _parse_greeting_ref(d: Raw) -> GreetingRef:
    custom = opt_map(d.get("custom"))
    preset = opt_map(d.get("preset"))
    return GreetingRef(
        type=opt_str(d.get("type")),
        custom_id=opt_id(custom.get("id")),
        preset_id=opt_id(preset.get("id")),
        preset_name=opt_str(preset.get("name")),
        preset_uri=opt_str(preset.get("uri")),
    )


def parse_answering_rule(d: Any) -> AnsweringRule:
    d = json_object(d, "answering rule")
    return AnsweringRule(
        id=req_id(d, "id", "answering rule"),
        name=opt_str(d.get("name")),
        type=opt_str(d.get("type")),
        greetings=tuple(
            _parse_greeting_ref(g) for g in opt_list(d.get("greetings")) if isinstance(g, Mapping)
        ),
        enabled=opt_bool(d.get("enabled")),
        uri=opt_str(d.get("uri")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class Greeting:
    """A custom greeting (``GET …/greeting/{id}`` or the upload response). No size."""

    id: str
    type: str | None
    content_type: str | None
    content_uri: str | None
    answering_rule_id: str | None = None
    uri: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_greeting(d: Any) -> Greeting:
    d = json_object(d, "greeting")
    return Greeting(
        id=req_id(d, "id", "greeting"),
        type=opt_str(d.get("type")),
        content_type=opt_str(d.get("contentType")),
        content_uri=opt_str(d.get("contentUri")),
        answering_rule_id=opt_id(opt_map(d.get("answeringRule")).get("id")),
        uri=opt_str(d.get("uri")),
        raw=d,
    )
