"""Deterministic demo data for the emulator: the seeded account (``build_store``).

Its fixed material (people, texts, presets) is in ``seed_data``, the message and call
builders it shares with the admin API in ``seed_builders``, scale mode in ``seed_scale``.

Everything derives from ``config.seed`` through string-seeded ``random.Random`` instances
(stable across processes, independent of ``PYTHONHASHSEED``): two builds with the same seed
produce the same ids, names, texts and relative ages; only absolute times follow ``now``
(whole milliseconds before ``now``). Items are planned first, then created oldest first,
so message ids grow with ``creationTime`` as on a real account and ``Store.add_message``
appends instead of shifting its sorted index.

The account deliberately carries hostile data a filesystem must survive (docs/ringcentral.md
§13 E7-E9): names with ``/``, RTL marks, emoji, combining and zero-width characters, a
caller name longer than 255 UTF-8 bytes, another with control characters, an SMS short
code, a caller without a name, ``..`` as a name, duplicate ``creationTime`` values,
attachments without ``size``, Deleted and Purged messages.

Media is never produced here: attachments, recordings and greetings get a ``Blob`` with
``(kind, params)`` that ``store`` regenerates through ``media`` on download, so scale mode
(``config.scale`` extra messages per extension) costs only the Python objects.
"""

from __future__ import annotations

import gc
import random
import unicodedata
from collections.abc import Callable
from typing import Any

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed_builders import (
    IdSource,
    audio_blob,
    build_call,
    build_fax,
    build_pager,
    build_sms,
    build_voicemail,
    ext_party,
    fax_number,
    mark_deleted,
    number_with,
    random_age,
    read_state_at,
    whole_ms,
)
from rcfs.emulator.seed_data import (
    CONTACTS,
    DIRECTIONS,
    FAX_SENDERS,
    FAX_SUBJECTS,
    GREETING_PRESETS,
    GROUP_TEXTS,
    HOSTILE,
    HOSTILE_FAX_SUBJECTS,
    HOSTILE_TEXTS,
    KIND_EXT,
    MIN_AGE_MS,
    PAGER_TEXTS,
    PEOPLE,
    SMS_SCRIPTS,
    TRANSCRIPTS,
    MmsImage,
)
from rcfs.emulator.seed_scale import add_scale_messages
from rcfs.emulator.store import (
    AnsweringRule,
    CallRecord,
    Extension,
    Greeting,
    Message,
    PhoneNumber,
    Store,
)

# ---------------------------------------------------------------------------------------------
# The seed


class _Seeder:
    """Plans every item with its age, then builds them oldest first."""

    def __init__(self, config: EmulatorConfig, now: float) -> None:
        self.config = config
        self.seed = config.seed
        self.now_ms = int(now * 1000)
        rng = random.Random(f"rcfs-emulator/{self.seed}/account")
        account_id = 400_000_000_000 + rng.randrange(1_000_000) * 1000 + 8
        main = f"+1650555{rng.randrange(100, 200):04d}"
        self.store = Store(account_id, main, "Northwind Traders & Co.")
        self.ids = IdSource(random.Random(f"rcfs-emulator/{self.seed}/ids"), self.store)
        self.rng = rng
        self.plans: list[tuple[int, int, Callable[[float], None]]] = []

    # -- time ------------------------------------------------------------------------------

    def t(self, age_ms: int) -> float:
        return (self.now_ms - age_ms) / 1000

    def plan(self, age_ms: int, build: Callable[[float], None]) -> None:
        self.plans.append((age_ms, len(self.plans), build))

    def run_plans(self) -> None:
        # Oldest first; equal ages keep their planning order (duplicate creationTime pairs).
        for age_ms, _, build in sorted(self.plans, key=lambda p: (-p[0], p[1])):
            build(self.t(age_ms))
        self.plans.clear()

    # -- account ---------------------------------------------------------------------------

    def extensions(self) -> list[Extension]:
        rng = self.rng
        used_ids: set[int] = {self.store.account_id}
        used_numbers = {self.store.main_number}
        next_number_id = 1_470_000_000 + rng.randrange(10_000) * 1000

        def number_id() -> int:
            nonlocal next_number_id
            next_number_id += 1000 + rng.randrange(1, 99)
            return next_number_id

        def direct_number(area: str) -> str:
            while True:
                num = f"+1{area}555{rng.randrange(100, 200):04d}"
                if num not in used_numbers:
                    used_numbers.add(num)
                    return num

        exts = []
        for person in PEOPLE:
            while True:
                ext_id = 400_000_000_000 + rng.randrange(1_000_000) * 1000 + 8
                if ext_id not in used_ids:
                    used_ids.add(ext_id)
                    break
            mail_name = "support" if person.kind == "department" else unicodedata.normalize(
                "NFKD", f"{person.first}.{person.last}".lower())
            ext = Extension(
                ext_id, person.number, person.first, person.last,
                f"{mail_name.encode('ascii', 'ignore').decode()}@northwind.example",
                admin=person.admin,
                type="Department" if person.kind == "department" else "User",
            )
            if person.kind == "tollfree":
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("833"), "DirectNumber", "VoiceFax", ["CallerId"]))
            elif person.kind == "department":
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "VoiceFax",
                    ["CallerId"]))
            else:
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "VoiceFax",
                    ["CallerId", "SmsSender", "A2PSmsSender", "MmsSender",
                     "InternationalSmsSender"]))
            if person.admin:
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), self.store.main_number, "MainCompanyNumber", "VoiceFax",
                    ["CallerId"]))
            if person.kind == "normal" and person.number in ("101", "102"):
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "FaxOnly", []))
            self.store.add_extension(ext)
            exts.append(ext)
        return exts

    # -- per-extension plans ---------------------------------------------------------------

    def plan_extension(self, ext: Extension, index: int, all_exts: list[Extension]) -> None:
        rng = random.Random(f"rcfs-emulator/{self.seed}/ext/{ext.number}")
        department = ext.type == "Department"
        can_text = number_with(ext, "SmsSender") is not None
        n_vm = 8 if department else 22 + rng.randrange(6)
        n_fax_in = 4 if department else 12 + rng.randrange(6)
        n_fax_out = 0 if department else 6 + rng.randrange(4)
        n_calls = 6 if department else 26 + rng.randrange(8)
        n_pager = 0 if department else 4 + rng.randrange(3)

        for i in range(n_vm):
            bucket = "recent" if i < 2 else "old" if i == n_vm - 1 else None
            self.plan_voicemail(ext, rng, random_age(rng, bucket), rng.choice(CONTACTS).party(),
                                with_call=rng.random() < 0.4)
        for i in range(n_fax_in):
            bucket = "recent" if i == 0 else "old" if i == n_fax_in - 1 else None
            self.plan_fax_in(ext, rng, random_age(rng, bucket), rng.choice(FAX_SENDERS).party(),
                             rng.choice(FAX_SUBJECTS), tiff=(i == n_fax_in - 2))
        for i in range(n_fax_out):
            self.plan_fax_out(ext, rng, random_age(rng, "recent" if i == 0 else None),
                              failed=(i == n_fax_out - 1))
        if can_text:
            self.plan_sms(ext, rng)
        colleagues = [e for e in all_exts if e is not ext and e.type == "User"]
        for i in range(n_pager):
            other = colleagues[(index + i) % len(colleagues)]
            direction = "Inbound" if i % 2 == 0 else "Outbound"
            text = PAGER_TEXTS[(i + index) % len(PAGER_TEXTS)]
            self.plan(random_age(rng, "recent" if i == 0 else None),
                      self._pager(ext, rng, direction, ext_party(other), text))
        for i in range(n_calls):
            self.plan_call(ext, rng, i, all_exts)
        if index == 0:
            # The one-hour recording (the seed promises at least one of 3600 s).
            age = random_age(rng, "month")
            self.plan(age, lambda t: self._add_call(
                build_call(self.ids, ext, t, 3600, "Outbound", CONTACTS[1].party(),
                           recording=(self.config.recording_format, "Automatic"))))
        if index in (0, 1):
            self.plan_hostile(ext, rng)

    def _mark(self, msg: Message, rng: random.Random, t: float) -> None:
        """Leave ~6% Deleted (recently, so the 5-day purge does not hit during tests)."""
        if rng.random() < 0.06:
            mark_deleted(msg, whole_ms(self.now_ms / 1000 - rng.uniform(600, 2 * 86400)))

    def plan_voicemail(self, ext: Extension, rng: random.Random, age: int,
                       caller: dict[str, Any], *, with_call: bool = False,
                       transcript: str | None = None, duration: int | None = None,
                       fmt: str | None = None, deletable: bool = True) -> None:
        duration = duration or rng.choice((4, 9, 15, 22, 31, 45, 63, 88, 120, 184))
        age = max(age, MIN_AGE_MS + duration * 1000)
        fmt = fmt or rng.choice(("mp3", "mp3", "wav"))
        if transcript is None and rng.random() < 0.5:
            transcript = rng.choice(TRANSCRIPTS)
        ring = rng.randrange(12, 28)
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            mid = self.store.new_id()
            read, lmt = read_state_at(read_roll, read_delay, self.now_ms, t, True)
            msg = build_voicemail(self.store, self.config, ext, t, dict(caller), duration, fmt,
                                  transcript, msg_id=mid, read_status=read)
            msg.last_modified_time = lmt
            if deletable:
                self._mark(msg, rng, t)
            self.store.add_message(msg)
            if with_call:
                self._add_call(build_call(self.ids, ext, whole_ms(t - ring), ring + duration,
                                          "Inbound", dict(caller), result="Voicemail",
                                          message_id=mid))

        self.plan(age, build)

    def plan_fax_in(self, ext: Extension, rng: random.Random, age: int,
                    sender: dict[str, Any], subject: str | None, *, tiff: bool = False) -> None:
        pages = rng.choice((1, 1, 2, 3, 5, 8))
        resolution = rng.choice(("High", "Low"))
        with_call = rng.random() < 0.3
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            read, lmt = read_state_at(read_roll, read_delay, self.now_ms, t, True)
            msg = build_fax(self.store, self.config, ext, t, "Inbound", dict(sender), pages,
                            resolution=resolution, subject=subject,
                            doc="tiff" if tiff else "pdf", read_status=read)
            msg.last_modified_time = lmt
            self._mark(msg, rng, t)
            self.store.add_message(msg)
            if with_call:
                self._add_call(build_call(self.ids, ext, whole_ms(t - 30 * pages), 30 * pages,
                                          "Inbound", dict(sender), result="Received",
                                          call_type="Fax", message_id=msg.id,
                                          my_number=fax_number(ext)))

        self.plan(age, build)

    def plan_fax_out(self, ext: Extension, rng: random.Random, age: int, failed: bool) -> None:
        recipients = [rng.choice(FAX_SENDERS + CONTACTS[:6]).party()
                      for _ in range(1 if rng.random() < 0.8 else 2)]
        pages = rng.choice((1, 2, 2, 4, 6))
        cover = rng.choice((0, 0, 1, 3, 7))
        cover_text = rng.choice((None, "Please see attached / call with questions",
                                 "Signed copy — thanks!")) if cover else None
        src_roll = rng.random()
        source: tuple[str, str, int] | None = None
        if src_roll < 0.2:
            source = ("pdf", "Quote 2024/Q3 final.pdf", max(1, pages - (1 if cover else 0)))
        elif src_roll < 0.35:
            source = ("png", "scan_0001.png", 1)

        def build(t: float) -> None:
            msg = build_fax(self.store, self.config, ext, t, "Outbound", recipients, pages,
                            resolution=rng.choice(("High", "Low")), cover_index=cover,
                            cover_text=cover_text, source=source,
                            status="SendingFailed" if failed else "Sent",
                            fax_error="LineBusy" if failed else None)
            msg.last_modified_time = whole_ms(t + 60 * pages)
            self.store.add_message(msg)

        self.plan(age, build)

    def plan_sms(self, ext: Extension, rng: random.Random) -> None:
        mine = {"phoneNumber": number_with(ext, "SmsSender"), "name": ext.name}
        peers = rng.sample(CONTACTS[:11], 5)
        for k, peer in enumerate(peers):
            script = SMS_SCRIPTS[rng.randrange(len(SMS_SCRIPTS))]
            # The first conversation is recent, the others start at random points in the past.
            age = random_age(rng, "recent" if k == 0 else None)
            age = max(age, MIN_AGE_MS + len(script) * 10 * 60_000)
            for j, (way, text) in enumerate(script):
                msg_age = age - j * rng.randrange(30_000, 10 * 60_000)
                inbound = way == "in"
                from_ = peer.party() if inbound else dict(mine)
                to = [dict(mine)] if inbound else [peer.party()]
                status = "DeliveryFailed" if (k == 3 and j == 0 and not inbound) else None
                self.plan(msg_age, self._sms(ext, rng, "Inbound" if inbound else "Outbound",
                                             from_, to, text, status=status))
        # A group chat: several recipients in `to`, replies from each member.
        members = rng.sample(CONTACTS[:11], 3)
        age = random_age(rng, "month")
        for j, text in enumerate(GROUP_TEXTS):
            msg_age = age - j * 90_000
            if j % 2 == 0:
                from_ = dict(mine)
                to = [m.party() for m in members]
                direction = "Outbound"
            else:
                sender = members[j % 3]
                from_ = sender.party()
                to = [dict(mine)] + [m.party() for m in members if m is not sender]
                direction = "Inbound"
            self.plan(msg_age, self._sms(ext, rng, direction, from_, to, text))
        # MMS: pictures with fileName, width, height and size.
        for j in range(5):
            peer = rng.choice(CONTACTS[:11])
            kind = ("jpeg", "png", "gif", "jpeg", "png")[j]
            w, h = rng.choice(((640, 480), (480, 640), (320, 240), (800, 600), (200, 200)))
            name = f"IMG_{rng.randrange(1000, 9999)}.{KIND_EXT[kind]}"
            images: list[MmsImage] = [(kind, w, h, name)]
            if j == 3:
                images.append(("png", 160, 120, "sticker.png"))
            inbound = j % 2 == 0
            caption: str | None = rng.choice(("Look at this!", "📷", None, "Here's the receipt"))
            from_ = peer.party() if inbound else dict(mine)
            to = [dict(mine)] if inbound else [peer.party()]
            self.plan(random_age(rng, "recent" if j == 0 else None),
                      self._sms(ext, rng, "Inbound" if inbound else "Outbound", from_, to,
                                caption, mms=images))

    def _sms(self, ext: Extension, rng: random.Random, direction: str,
             from_: dict[str, Any], to: list[dict[str, Any]], text: str | None,
             *, status: str | None = None,
             mms: list[MmsImage] | None = None,
             deletable: bool = True) -> Callable[[float], None]:
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)
        error = "SMS-CAR-411" if status == "DeliveryFailed" else None

        def build(t: float) -> None:
            read, lmt = read_state_at(read_roll, read_delay, self.now_ms, t,
                                    direction == "Inbound")
            msg = build_sms(self.store, self.config, ext, t, direction, from_, to, text, None,
                            mms=mms, status=status, error_code=error, read_status=read)
            msg.last_modified_time = lmt if direction == "Inbound" else (
                msg.sms_delivery_time or t)
            if deletable:
                self._mark(msg, rng, t)
            self.store.add_message(msg)

        return build

    def _pager(self, ext: Extension, rng: random.Random, direction: str,
               other: dict[str, Any], text: str) -> Callable[[float], None]:
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            read, lmt = read_state_at(read_roll, read_delay, self.now_ms, t,
                                    direction == "Inbound")
            msg = build_pager(self.store, self.config, ext, t, direction, other, text,
                              read_status=read)
            msg.last_modified_time = lmt
            self.store.add_message(msg)

        return build

    def plan_call(self, ext: Extension, rng: random.Random, i: int,
                  all_exts: list[Extension]) -> None:
        roll = rng.random()
        direction = rng.choice(DIRECTIONS)
        other = rng.choice(CONTACTS).party()
        if rng.random() < 0.1:
            peer = all_exts[(all_exts.index(ext) + 1 + rng.randrange(3)) % len(all_exts)]
            other = ext_party(peer)
            del other["extensionId"]
        result = "Call connected" if direction == "Outbound" else "Accepted"
        recording: tuple[str, str] | None = None
        short = False
        if roll < 0.12 and direction == "Inbound":
            result, duration = "Missed", 0
        elif roll < 0.24:
            duration = rng.randrange(5, 29)
            short = True
            recording = ("mp3", "Automatic")
        else:
            # 30 s .. 1 h, mostly a few minutes.
            duration = min(3600, int(30 * (120 ** rng.random())))
            if rng.random() < 0.8:
                # WAV vs MP3 is an account setting in RingCentral (docs/ringcentral.md §5.3).
                recording = (self.config.recording_format,
                             "Automatic" if rng.random() < 0.7 else "OnDemand")
        bucket = "recent" if i < 3 else None
        age = max(random_age(rng, bucket), MIN_AGE_MS + duration * 1000)
        action = None if direction == "Inbound" else rng.choice(
            ("VoIP Call", "VoIP Call", "RingOut Web", "Phone Call"))
        if short:
            # Too short to keep: shortRecording, no recording object (G4).
            recording = None
        self.plan(age, lambda t: self._add_call(build_call(
            self.ids, ext, t, duration, direction, other, result=result, action=action,
            recording=recording, short_recording=short)))

    def _add_call(self, call: CallRecord) -> None:
        self.store.add_call(call)

    def plan_hostile(self, ext: Extension, rng: random.Random) -> None:
        """The hostile names and shapes, some inside the 24 h window and some older."""
        h = HOSTILE
        hostile_vm = (
            ("control", "recent", True), ("long", "recent", False), ("rtl", "month", False),
            ("no_name", "recent", False), ("slash", "old", True), ("emoji", "month", False),
            ("zero_width", "old", False), ("combining", "recent", False),
            ("dots", "month", False),
        )
        for key, bucket, with_call in hostile_vm:
            self.plan_voicemail(ext, rng, random_age(rng, bucket), h[key].party(),
                                with_call=with_call, deletable=False)
        self.plan(random_age(rng, "month"), lambda t: self._add_call(build_call(
            self.ids, ext, t, 95, "Inbound", h["control"].party(),
            recording=(self.config.recording_format, "Automatic"))))
        for k, subject in enumerate(HOSTILE_FAX_SUBJECTS):
            self.plan_fax_in(ext, rng, random_age(rng, "recent" if k == 0 else "old"),
                             h["slash"].party() if k else h["long"].party(), subject)
        mine = {"phoneNumber": number_with(ext, "SmsSender"), "name": ext.name}
        # SMS from a short code, and a conversation of hostile texts with an emoji sender.
        self.plan(random_age(rng, "recent"), self._sms(
            ext, rng, "Inbound", h["short_code"].party(), [dict(mine)],
            "Your verification code is 482913. Do not share it.", deletable=False))
        base = random_age(rng, "recent") + 20 * 60_000
        for j, text in enumerate(HOSTILE_TEXTS):
            inbound = j % 2 == 0
            peer = h["emoji"] if j < 4 else h["rtl"]
            self.plan(base - j * 60_000, self._sms(
                ext, rng, "Inbound" if inbound else "Outbound",
                peer.party() if inbound else dict(mine),
                [dict(mine)] if inbound else [peer.party()], text, deletable=False))
        # A picture whose fileName is a path.
        self.plan(random_age(rng, "month"), self._sms(
            ext, rng, "Inbound", h["slash"].party(), [dict(mine)], "scan attached",
            mms=[("jpeg", 320, 240, "../photos/2024/IMG 0001.jpg")],
            deletable=False))
        # Duplicate creationTime: a voicemail and a fax, and two SMS of one conversation,
        # once inside the 24 h window and once a year ago.
        for bucket in ("recent", "old"):
            age = max(random_age(rng, bucket), MIN_AGE_MS + 60_000)
            self.plan_voicemail(ext, rng, age, CONTACTS[4].party(), duration=30,
                                deletable=False)
            self.plan_fax_in(ext, rng, age, FAX_SENDERS[0].party(), "Same second as a voicemail")
            for text in ("Part 1 of a split message", "Part 2 of a split message"):
                self.plan(age, self._sms(ext, rng, "Inbound", CONTACTS[5].party(),
                                         [dict(mine)], text, deletable=False))
        # Explicitly deleted and purged messages (not left to chance).
        now = self.now_ms / 1000

        def deleted_vm(t: float) -> None:
            msg = build_voicemail(self.store, self.config, ext, t, CONTACTS[2].party(), 20,
                                  "mp3", "Please delete this message.", read_status="Read")
            mark_deleted(msg, whole_ms(now - 3600))
            self.store.add_message(msg)

        def purged_fax(t: float) -> None:
            msg = build_fax(self.store, self.config, ext, t, "Inbound",
                            FAX_SENDERS[1].party(), 2, subject="Purged fax")
            mark_deleted(msg, whole_ms(now - 7200), purged=True)
            self.store.add_message(msg)

        self.plan(random_age(rng, "recent"), deleted_vm)
        self.plan(random_age(rng, "month"), purged_fax)

    # -- greetings -------------------------------------------------------------------------

    def greetings(self, ext: Extension) -> None:
        rng = random.Random(f"rcfs-emulator/{self.seed}/greetings/{ext.number}")

        def custom(rule_id: str, gtype: str, fmt: str) -> dict[str, Any]:
            gid = self.ids.greeting_id()
            blob = audio_blob(fmt, rng.randrange(4, 26), int(gid), greeting=True)
            self.store.greetings[gid] = Greeting(gid, ext.id, gtype, blob, rule_id)
            return {"type": gtype, "custom_id": gid}

        def preset(gtype: str) -> dict[str, Any]:
            pid, name = GREETING_PRESETS[gtype]
            return {"type": gtype, "preset": {"id": pid, "name": name}}

        if ext.type == "Department":
            rules = [AnsweringRule("business-hours-rule", ext.id, "BusinessHours", "Work Hours",
                                   greetings=[custom("business-hours-rule", "Voicemail", "wav"),
                                              preset("ConnectingAudio"), preset("HoldMusic")])]
        else:
            bh = "business-hours-rule"
            ah = "after-hours-rule"
            fmt = rng.choice(("wav", "mp3"))
            business = [
                custom(bh, "Introductory", "mp3") if rng.random() < 0.5 else preset(
                    "Introductory"),
                preset("Announcement"),
                preset("ConnectingMessage"),
                preset("ConnectingAudio"),
                custom(bh, "Voicemail", fmt),
                preset("Unavailable"),
                preset("InterruptPrompt"),
                preset("HoldMusic"),
            ]
            after = [
                preset("Introductory"),
                custom(ah, "Voicemail", "mp3") if rng.random() < 0.6 else preset("Voicemail"),
                preset("Unavailable"),
            ]
            custom_id = str(3_107_580_000 + rng.randrange(10_000) * 10 + ext.id % 10)
            vip = [
                custom(custom_id, "Announcement", "wav"),
                custom(custom_id, "Voicemail", "mp3"),
                preset("ConnectingAudio"),
            ]
            rules = [
                AnsweringRule(bh, ext.id, "BusinessHours", "Work Hours", greetings=business),
                AnsweringRule(ah, ext.id, "AfterHours", "After Hours", greetings=after),
                AnsweringRule(custom_id, ext.id, "Custom", "Holiday / Out of office (VIP ☎)",
                              enabled=rng.random() < 0.5, greetings=vip),
            ]
        for rule in rules:
            self.store.rules[rule_key(ext.id, rule.id)] = rule


def rule_key(extension_id: int, rule_id: str) -> str:
    """Key of an answering rule in ``Store.rules``: rule ids such as ``business-hours-rule``
    repeat in every extension, so the dict is keyed by ``"<extensionId>/<ruleId>"``."""
    return f"{extension_id}/{rule_id}"


def build_store(config: EmulatorConfig, now: float) -> Store:
    """The seeded account for ``config.seed`` (plus ``config.scale`` messages per extension).

    The cyclic GC is paused meanwhile: with 100,000+ new objects its generation scans would
    cost more than building them (nothing here creates reference cycles worth collecting);
    in scale mode the result is frozen out of later collections for the same reason.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        seeder = _Seeder(config, now)
        exts = seeder.extensions()
        for index, ext in enumerate(exts):
            seeder.plan_extension(ext, index, exts)
        seeder.run_plans()
        for ext in exts:
            seeder.greetings(ext)
        if config.scale > 0:
            add_scale_messages(seeder.store, config, seeder.now_ms, exts, config.scale)
        if len(seeder.store.messages) >= 10_000:
            # Move the (long-lived, acyclic) seeded objects out of the collector's reach:
            # otherwise the first collections after this traverse millions of them (7 s
            # each at 500,000 messages).
            gc.freeze()
        return seeder.store
    finally:
        if was_enabled:
            gc.enable()


