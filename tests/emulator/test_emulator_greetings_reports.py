"""Answering rules, greetings (upload and discovery) and the message-store report, against a
real emulator process (docs/ringcentral.md §13 J1-J6, I11, C7, D4).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from rcfs.emulator import media
from tests.emulator_proc import EmulatorProc, limited_client
from tests.emulator_support import assert_error, emu_now, iso

BIG = "Light=100000,Medium=100000,Heavy=100000,Auth=100000"
STEP = 30.0  # report_step of the report emulator
ARCHIVE_MAX = 400_000  # archive_max_bytes of the report emulator
EXT = "/restapi/v1.0/account/~/extension/~"
REPORT = "/restapi/v1.0/account/~/message-store-report"

@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc("--limits", BIG, "--set", f"report_step={STEP}",
                      "--set", f"archive_max_bytes={ARCHIVE_MAX}") as proc:
        yield proc


def get(client: httpx.Client, path: str, group: str, **params: Any) -> dict[str, Any]:
    r = client.get(path, params=params) if params else client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["x-rate-limit-group"] == group
    return r.json()  # type: ignore[no-any-return]


# -- answering rules and greeting discovery (J1) -----------------------------------------------


def test_rules_list_and_detail(emu: EmulatorProc, rest: httpx.Client) -> None:
    body = get(rest, EXT + "/answering-rule", "Medium")
    rules = body["records"]
    assert [r["id"] for r in rules][:2] == ["business-hours-rule", "after-hours-rule"]
    for rule in rules:
        assert set(rule) <= {"uri", "id", "type", "name", "enabled"}
        assert rule["type"] in ("BusinessHours", "AfterHours", "Custom")
        assert "~" not in rule["uri"] and rule["uri"].endswith(f"/answering-rule/{rule['id']}")
    assert body["paging"]["totalElements"] == len(rules)  # enumerated paging
    custom = get(rest, EXT + "/answering-rule", "Medium", type="Custom")["records"]
    assert custom and all(r["type"] == "Custom" for r in custom)

    detail = get(rest, rules[0]["uri"], "Light")
    assert detail["id"] == "business-hours-rule" and detail["greetings"]
    for item in detail["greetings"]:
        assert set(item) in ({"type", "custom"}, {"type", "preset"})
        if "preset" in item:
            assert set(item["preset"]) == {"uri", "id", "name"}
        else:
            assert item["custom"]["id"].isdigit()
    r = rest.get(EXT + "/answering-rule/no-such-rule")
    assert_error(r, 404, "CMN-102", parameterName="ruleId")


def test_greetings_found_through_rules_and_downloaded(emu: EmulatorProc,
                                                      rest: httpx.Client) -> None:
    """There is no greeting list: walk rules -> custom ids -> greeting -> media content."""
    acc = emu.info["account_id"]
    me = emu.user(admin=True)["extension_id"]
    found: dict[str, str] = {}
    for rule in get(rest, EXT + "/answering-rule", "Medium")["records"]:
        for item in get(rest, rule["uri"], "Light")["greetings"]:
            if "custom" in item:
                found[item["custom"]["id"]] = rule["id"]
    summary = emu.admin("GET", "/_emulator/summary")
    mine = next(e for e in summary["extensions"] if str(e["id"]) == me)
    assert set(found) == set(mine["greetings"])
    for gid, rule_id in found.items():
        greeting = get(rest, f"{EXT}/greeting/{gid}", "Medium")
        assert greeting["id"] == gid and greeting["contentType"] in ("audio/mpeg", "audio/wav")
        assert greeting["uri"] == (f"{emu.info['platform_url']}/restapi/v1.0/account/{acc}"
                                   f"/extension/{me}/greeting/{gid}")
        assert greeting["contentUri"] == (f"{emu.info['media_url']}/restapi/v1.0/account/"
                                          f"{acc}/extension/{me}/greeting/{gid}/content")
        assert greeting["answeringRule"]["id"] == rule_id
    gid = next(iter(found))
    content = rest.get(get(rest, f"{EXT}/greeting/{gid}", "Medium")["contentUri"])
    assert content.status_code == 200 and content.headers["x-rate-limit-group"] == "Heavy"
    assert content.content == emu.content("greeting", gid)
    assert_error(rest.get(f"{EXT}/greeting/123"), 404, "CMN-102", parameterName="greetingId")


# -- greeting upload (I11) -----------------------------------------------------------------------


def _multipart(boundary: str, parts: list[tuple[dict[str, str], bytes]],
               preamble: bytes = b"") -> bytes:
    out = [preamble] if preamble else []
    for headers, data in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        out.append(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n" + data + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def _binary_headers(filename: str, ctype: str) -> dict[str, str]:
    return {"Content-Disposition": f'form-data; name="binary"; filename="{filename}"',
            "Content-Type": ctype}


def test_upload_form_data_fields_apply_false(emu: EmulatorProc, rest: httpx.Client) -> None:
    audio = media.wav(2.5, 77)
    r = rest.post(EXT + "/greeting", params={"apply": "false"},
                   data={"type": "Voicemail"},
                   files={"binary": ("hello.wav", audio, "audio/wav")})
    assert r.status_code == 200, r.text
    assert r.headers["x-rate-limit-group"] == "Heavy"
    body = r.json()
    assert body["type"] == "Voicemail" and body["contentType"] == "audio/wav"
    assert "answeringRule" not in body
    assert body["contentUri"].startswith(emu.info["media_url"])
    assert get(rest, body["uri"], "Medium") == body
    assert emu.content("greeting", body["id"]) == audio
    downloaded = rest.get(body["contentUri"])
    assert downloaded.status_code == 200 and downloaded.content == audio
    sent = [s for s in emu.sent() if s["kind"] == "greeting" and s["result_id"] == body["id"]]
    assert len(sent) == 1
    att = sent[0]["attachments"][0]
    assert att == {"filename": "hello.wav", "content_type": "audio/wav", "size": len(audio),
                   "sha256": hashlib.sha256(audio).hexdigest()}


def test_upload_json_part_applies_to_rule(emu: EmulatorProc, rest: httpx.Client) -> None:
    """form-data with a JSON part (``json``) and answeringRule: the rule now points at it."""
    audio = media.mp3(3, 5)
    boundary = "Boundary_14_2952358_1361963763144"
    body = _multipart(boundary, [
        ({"Content-Disposition": 'form-data; name="json"',
          "Content-Type": "application/json; charset=UTF-8"},
         json.dumps({"type": "Voicemail",
                     "answeringRule": {"id": "after-hours-rule"}}).encode()),
        (_binary_headers("mygreeting.mp3", "audio/mpeg"), audio),
    ])
    r = rest.post(EXT + "/greeting", content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    greeting = r.json()
    assert greeting["contentType"] == "audio/mpeg"
    assert greeting["answeringRule"]["id"] == "after-hours-rule"
    assert greeting["answeringRule"]["uri"].endswith("/answering-rule/after-hours-rule")
    rule = get(rest, EXT + "/answering-rule/after-hours-rule", "Light")
    voicemail = [g for g in rule["greetings"] if g["type"] == "Voicemail"]
    assert voicemail == [{"type": "Voicemail",
                          "custom": {"uri": greeting["uri"], "id": greeting["id"]}}]
    assert emu.content("greeting", greeting["id"]) == audio


def test_upload_form_data_rule_field(emu: EmulatorProc, rest: httpx.Client) -> None:
    r = rest.post(EXT + "/greeting",
                   data={"type": "Introductory", "answeringRuleId": "business-hours-rule"},
                   files={"binary": ("intro.wav", media.wav(1, 3), "audio/x-wav")})
    assert r.status_code == 200, r.text
    assert r.json()["answeringRule"]["id"] == "business-hours-rule"
    rule = get(rest, EXT + "/answering-rule/business-hours-rule", "Light")
    intro = [g for g in rule["greetings"] if g["type"] == "Introductory"]
    assert intro[0]["custom"]["id"] == r.json()["id"]


@pytest.mark.parametrize("style", ["parts", "preamble"])
def test_upload_multipart_mixed(emu: EmulatorProc, rest: httpx.Client, style: str) -> None:
    """multipart/mixed: JSON first (as a part, or as the docs example writes it, before the
    first boundary), then the binary part."""
    audio = media.wav(1.5, 9)
    boundary = "Boundary_mixed_42"
    envelope = json.dumps({"type": "Voicemail"}).encode()
    binary = (_binary_headers("mygreeting.wav", "audio/wav"), audio)
    if style == "parts":
        body = _multipart(boundary, [({"Content-Type": "application/json"}, envelope), binary])
    else:
        body = _multipart(boundary, [binary], preamble=envelope + b"\r\n")
    r = rest.post(EXT + "/greeting", params={"apply": "false"}, content=body,
                   headers={"Content-Type": f"multipart/mixed;boundary={boundary}"})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "Voicemail"
    assert emu.content("greeting", r.json()["id"]) == audio


def test_upload_errors(emu: EmulatorProc, rest: httpx.Client) -> None:
    wav = media.wav(1, 1)
    url = EXT + "/greeting"
    before = len(emu.sent())
    # apply defaults to true: an answering rule is then mandatory.
    r = rest.post(url, data={"type": "Voicemail"},
                   files={"binary": ("a.wav", wav, "audio/wav")})
    assert_error(r, 400, "CMN-100", parameterName="answeringRule")
    assert r.headers["x-rate-limit-group"] == "Heavy"
    r = rest.post(url, params={"apply": "false"}, data={"type": "Voicemail"},
                   files={"binary": ("a.wav", b"", "audio/wav")})
    assert_error(r, 400, "AWR-128")
    pdf = media.pdf(1, 1)
    r = rest.post(url, params={"apply": "false"}, data={"type": "Voicemail"},
                   files={"binary": ("a.pdf", pdf, "application/pdf")})
    assert_error(r, 400, "AWR-129")
    r = rest.post(url, params={"apply": "false"}, data={"type": "Voicemail"},
                   files={"binary": ("a.wav", pdf, "audio/wav")})  # lying Content-Type
    assert_error(r, 400, "AWR-129")
    r = rest.post(url, params={"apply": "false"}, data={"type": "Voicemail"},
                   files={"binary": ("a.mp3", wav, "audio/mpeg")})  # wav bytes called mp3
    assert_error(r, 400, "AWR-129")
    r = rest.post(url, params={"apply": "false"}, data={"type": "Birthday"},
                   files={"binary": ("a.wav", wav, "audio/wav")})
    assert_error(r, 400, "CMN-101", parameterName="type")
    r = rest.post(url, data={"type": "Voicemail", "answeringRuleId": "nope"},
                   files={"binary": ("a.wav", wav, "audio/wav")})
    assert_error(r, 400, "CMN-102", parameterName="answeringRule.id")
    r = rest.post(url, data={"type": "HoldMusic", "answeringRuleId": "after-hours-rule"},
                   files={"binary": ("a.wav", wav, "audio/wav")})
    assert_error(r, 400, "AWR-165")
    r = rest.post(url, params={"apply": "false"}, json={"type": "Voicemail"})
    assert r.status_code == 415
    assert len(emu.sent()) == before  # rejected uploads store nothing


def test_upload_needs_edit_extensions_scope(emu: EmulatorProc) -> None:
    with limited_client(emu, emu.user(admin=True)) as client:
        r = client.post(EXT + "/greeting", params={"apply": "false"},
                        data={"type": "Voicemail"},
                        files={"binary": ("a.wav", media.wav(1, 1), "audio/wav")})
        body = assert_error(r, 403, "CMN-401", top="InsufficientPermissions")
        assert body["errors"][0]["permissionName"] == "EditExtensions"


# -- message-store report (J2-J6) ----------------------------------------------------------------




def test_report_is_admin_only(emu: EmulatorProc, user: httpx.Client) -> None:
    r = user.post(REPORT, json={})
    assert_error(r, 403, "CMN-408", permissionName="Users")
    assert r.headers["x-rate-limit-group"] == "Heavy"


def test_report_lifecycle_and_archives(emu: EmulatorProc, rest: httpx.Client) -> None:
    """J2-J4: 202 task; Accepted -> InProgress -> Completed on the clock; zip archives with
    message-store.json files and attachment binaries, each within archive_max_bytes."""
    acc = emu.info["account_id"]
    me = emu.user(admin=True)["extension_id"]
    now = emu_now(emu)
    date_from, date_to = now - timedelta(days=20), now
    r = rest.post(REPORT, json={"dateFrom": iso(date_from, millis=False),
                                 "dateTo": iso(date_to, millis=False),
                                 "messageTypes": ["VoiceMail", "Fax"]})
    assert r.status_code == 202, r.text
    assert r.headers["x-rate-limit-group"] == "Heavy"
    task = r.json()
    assert set(task) == {"id", "uri", "status", "accountId", "extensionId", "creationTime",
                         "lastModifiedTime", "dateFrom", "dateTo"}
    assert re.fullmatch(rf"{acc}-{me}-[0-9a-f]{{32}}", task["id"])
    assert task["status"] == "Accepted" and task["accountId"] == acc
    assert task["extensionId"] == me
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", task["creationTime"])
    assert task["uri"] == f"{emu.info['platform_url']}{REPORT.replace('~', acc)}/{task['id']}"

    assert_error(rest.get(task["uri"] + "/archive"), 404, "CMN-102")  # not ready yet
    emu.advance(STEP)
    running = get(rest, task["uri"], "Heavy")
    assert running["status"] == "InProgress" and "startTime" in running
    assert "finishTime" not in running
    emu.advance(STEP)
    done = get(rest, task["uri"], "Heavy")
    assert done["status"] == "Completed" and done["finishTime"] >= done["startTime"]

    records = get(rest, task["uri"] + "/archive", "Heavy")["records"]
    assert len(records) >= 2
    blobs = []
    for n, rec in enumerate(records):
        assert rec["uri"] == f"{task['uri']}/archive/{n}"
        r = rest.get(rec["uri"])
        assert r.status_code == 200 and r.headers["x-rate-limit-group"] == "Heavy"
        assert r.headers["content-type"].startswith("application/zip")
        assert len(r.content) == rec["size"]
        blobs.append(zipfile.ZipFile(io.BytesIO(r.content)))

    # archive 0: one message-store.json per extension with messages in the range.
    listed: dict[str, dict[str, Any]] = {}
    for name in blobs[0].namelist():
        m = re.fullmatch(rf"account/{acc}/extension/(\d+)/message-store\.json", name)
        assert m, name
        for msg in json.loads(blobs[0].read(name))["records"]:
            assert msg["type"] in ("VoiceMail", "Fax")
            assert iso(date_from, millis=False) <= msg["creationTime"] <= iso(date_to, millis=False)
            assert str(msg["uri"]).endswith(f"/extension/{m.group(1)}/message-store/{msg['id']}")
            listed[f"{m.group(1)}/{msg['id']}"] = msg
    assert listed

    # archives 1..n: every attachment of a listed message, bytes identical to the API's.
    files: dict[str, bytes] = {}
    for n, zf in enumerate(blobs[1:], 1):
        names = zf.namelist()
        assert records[n]["size"] <= ARCHIVE_MAX or len(names) == 1
        for name in names:
            files[name] = zf.read(name)
    expected = 0
    for key, msg in listed.items():
        ext_id, mid = key.split("/")
        if msg["availability"] == "Purged":
            continue
        for att in msg["attachments"]:
            prefix = f"account/{acc}/extension/{ext_id}/message-store/content/{mid}/"
            leaf = str(att.get("fileName") or "").replace("/", "_").replace("\\", "_")
            wanted = (prefix + leaf, f"{prefix}{att['id']}_{leaf}") if leaf else (
                f"{prefix}{att['id']}.",)
            hits = [n for n in files if n.startswith(prefix) and (
                n in wanted if leaf else n.startswith(wanted[0]))]
            assert hits, (prefix, wanted)
            if expected % 4 == 0:  # bytes of a sample (each comparison is a round trip)
                data = emu.content("message", f"{mid}/{att['id']}")
                assert any(files[n] == data for n in hits), (prefix, wanted)
            expected += 1
    assert expected == len(files)
    assert len(blobs) > 2, "archive_max_bytes should have split the attachments"


def test_report_concurrency_limit(emu: EmulatorProc, rest: httpx.Client) -> None:
    """J2: a third unfinished task is refused (429 CMN-304, Retry-After) until one ends."""
    first = rest.post(REPORT, json={})
    second = rest.post(REPORT, content=b"")
    assert first.status_code == 202 and second.status_code == 202
    third = rest.post(REPORT, json={})
    assert_error(third, 429, "CMN-304")
    assert 0 < int(third.headers["retry-after"]) <= 2 * STEP
    emu.advance(2 * STEP)
    assert get(rest, first.json()["uri"], "Heavy")["status"] == "Completed"
    assert rest.post(REPORT, json={}).status_code == 202
    emu.advance(2 * STEP)


def test_report_errors(emu: EmulatorProc, rest: httpx.Client) -> None:
    assert_error(rest.get(REPORT + "/nope"), 404, "CMN-102", parameterName="taskId")
    assert_error(rest.get(REPORT + "/nope/archive"), 404, "CMN-102", parameterName="taskId")
    r = rest.post(REPORT, json={"dateFrom": "2020-02-01T00:00:00Z",
                                 "dateTo": "2020-01-01T00:00:00Z"})
    assert_error(r, 400, "CMN-101", parameterName="dateFrom")
    r = rest.post(REPORT, json={"dateFrom": "yesterday"})
    assert_error(r, 400, "CMN-101", parameterName="dateFrom")
    r = rest.post(REPORT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


# -- the multipart parser (rcfs/emulator/multipart.py) ---------------------------------------


def test_multipart_parser_form_data_and_mixed() -> None:
    from rcfs.emulator.multipart import parse_multipart

    data = b"RIFF\r\n--bxtail\r\n--b\r\nmore"  # boundary-like lines inside the data
    body = _multipart("bx", [
        ({"Content-Disposition": 'form-data; name="type"'}, b"Voicemail"),
        ({"Content-Disposition": "form-data; name=\"binary\"; filename*=UTF-8''gr%C3%BC%C3%9F.wav",
          "Content-Type": "Audio/WAV; charset=binary"}, data),
    ], preamble=b"ignored preamble\r\n")
    parts = parse_multipart('multipart/form-data; boundary="bx"', body)
    assert [p.name for p in parts] == ["type", "binary"]
    assert parts[0].text() == "Voicemail" and parts[0].content_type is None
    assert parts[1].filename == "grüß.wav" and parts[1].content_type == "audio/wav"
    assert parts[1].data == data
    with_preamble = parse_multipart("multipart/mixed;boundary=bx", body, keep_preamble=True)
    assert with_preamble[0].preamble and with_preamble[0].data == b"ignored preamble"
    lf = body.replace(b"\r\n", b"\n")
    assert [p.data for p in parse_multipart("multipart/mixed; boundary=bx", lf)][0] == \
        b"Voicemail"


@pytest.mark.parametrize("ctype,body", [
    ("multipart/form-data", b"--x\r\n\r\nA\r\n--x--\r\n"),  # no boundary parameter
    ("text/plain; boundary=x", b"--x\r\n\r\nA\r\n--x--\r\n"),
    ("multipart/mixed; boundary=x", b"--x\r\n\r\nA\r\n"),  # never closed
    ("multipart/mixed; boundary=x", b"no delimiter at all"),
])
def test_multipart_parser_rejects(ctype: str, body: bytes) -> None:
    from rcfs.emulator.multipart import MultipartError, parse_multipart

    with pytest.raises(MultipartError):
        parse_multipart(ctype, body)


def test_upload_malformed_multipart(rest: httpx.Client) -> None:
    r = rest.post(EXT + "/greeting", content=b"--x\r\nbroken",
                   headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.json()["errorCode"] == "CMN-104"


def test_preset_uris_resolve_in_the_dictionary(rest: httpx.Client) -> None:
    rule = get(rest, EXT + "/answering-rule/business-hours-rule", "Light")
    presets = [g["preset"] for g in rule["greetings"] if "preset" in g]
    assert presets
    for preset in presets:
        entry = get(rest, preset["uri"], "Medium")
        assert entry["id"] == preset["id"] and entry["name"] == preset["name"]
    listed = get(rest, "/restapi/v1.0/dictionary/greeting", "Medium", type="HoldMusic")
    assert [r["type"] for r in listed["records"]] == ["HoldMusic"]


def test_zz_exchanges_conform_to_spec(emu: EmulatorProc) -> None:
    """Every exchange of this module validates against spec46 (denser than the teardown
    sample; the report task's startTime/finishTime are in ALLOW, tests/openapi_rules.py)."""
    from tests.openapi_check import ExchangeChecker
    from tests.openapi_spec import format_problems

    problems = emu.openapi_problems(ExchangeChecker(per_status=1000, max_shapes=1000))
    assert not problems, format_problems(problems, "greeting/report tests")
