"""rcfs.api.models: one parser per object, tolerant of RingCentral's inconsistencies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rcfs.api.models import (
    EPOCH,
    ModelError,
    format_time,
    parse_answering_rule,
    parse_archive_ref,
    parse_attachment,
    parse_call_log_record,
    parse_extension,
    parse_greeting,
    parse_message,
    parse_phone_number,
    parse_recording,
    parse_report_task,
    parse_time,
    parse_time_opt,
)

# A voicemail as the docs show it (media-host attachment URI, no size).
VOICEMAIL = """{
  "uri" : "https://platform.ringcentral.com/restapi/v1.0/account/230919004/extension/230919004/message-store/5209304004",
  "id" : 5209304004,
  "extensionId" : "230919004",
  "to" : [ { "phoneNumber" : "+16505550100", "name" : "Jane" } ],
  "from" : { "phoneNumber" : "+14155550100", "name" : "Bob", "location" : "SF" },
  "type" : "VoiceMail",
  "creationTime" : "2018-10-08T09:17:27.000Z",
  "readStatus" : "Unread",
  "priority" : "Normal",
  "attachments" : [ {
    "id" : 5209304004,
    "uri" : "https://media.ringcentral.com/restapi/v1.0/account/230919004/extension/230919004/message-store/5209304004/content/5209304004",
    "type" : "AudioRecording",
    "contentType" : "audio/x-wav",
    "vmDuration" : 23
  } ],
  "direction" : "Inbound",
  "availability" : "Alive",
  "messageStatus" : "Received",
  "vmTranscriptionStatus" : "NotAvailable",
  "lastModifiedTime" : "2018-10-08T09:17:28.123Z",
  "conversationId" : 8031152018338945839,
  "conversation" : { "id" : "8031152018338945839", "uri" : "https://x/c/8031152018338945839" }
}"""


def test_parse_time_variants() -> None:
    want = datetime(2018, 10, 8, 9, 17, 27, tzinfo=UTC)
    assert parse_time("2018-10-08T09:17:27.000Z") == want
    assert parse_time("2018-10-08T09:17:27Z") == want
    assert parse_time("2018-10-08T09:17:27z") == want
    assert parse_time("2018-10-08T13:17:27+04:00") == want
    assert parse_time("2018-10-08T13:17:27.000+0400") == want
    assert parse_time("2018-10-08T09:17:27") == want  # naive = UTC
    assert parse_time("2018-10-08T09:17:27.450Z") == want + timedelta(milliseconds=450)
    assert parse_time("2018-10-08T09:17:27.4501234Z") == want + timedelta(microseconds=450123)
    assert parse_time("2018-10-08") == datetime(2018, 10, 8, tzinfo=UTC)
    assert parse_time("2018-10") == datetime(2018, 10, 1, tzinfo=UTC)
    assert parse_time(1539000000000) == datetime.fromtimestamp(1539000000, UTC)
    assert parse_time(datetime(2018, 10, 8, 9, 17, 27)) == want
    east = timezone(timedelta(hours=2))
    assert parse_time(datetime(2018, 10, 8, 11, 17, 27, tzinfo=east)) == want
    assert parse_time("2018-10-08T09:17:27Z").tzinfo is UTC
    bad: object
    for bad in ("", "yesterday", None, True, [], "2018-13-45T00:00:00Z"):
        with pytest.raises(ModelError):
            parse_time(bad)
    assert parse_time_opt(None) is None and parse_time_opt("garbage") is None


def test_format_time() -> None:
    assert format_time(EPOCH) == "1970-01-01T00:00:00Z"
    assert format_time(datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)) == \
        "2020-01-02T03:04:05.678Z"
    assert format_time(datetime(2020, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == \
        "2020-01-02T03:04:05Z"
    assert format_time("2020-01-02") == "2020-01-02"
    assert parse_time(format_time(datetime(2021, 5, 6, 7, 8, 9, 123000, tzinfo=UTC))) == \
        datetime(2021, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def test_parse_voicemail_from_docs() -> None:
    m = parse_message(json.loads(VOICEMAIL))
    assert m.id == "5209304004" and m.extension_id == "230919004"
    assert m.type == "VoiceMail" and m.direction == "Inbound" and m.availability == "Alive"
    assert m.creation_time == datetime(2018, 10, 8, 9, 17, 27, tzinfo=UTC)
    assert m.last_modified_time == datetime(2018, 10, 8, 9, 17, 28, 123000, tzinfo=UTC)
    assert m.from_ is not None and m.from_.phone_number == "+14155550100"
    assert m.from_.location == "SF"
    assert m.to[0].name == "Jane"
    (att,) = m.attachments
    assert att.id == "5209304004" and att.size is None and att.vm_duration == 23
    assert att.uri.startswith("https://media.ringcentral.com/")  # verbatim
    assert att.content_type == "audio/x-wav"
    # > 2^53 survives exactly (a float would round it to ...5840)
    assert m.conversation_id == 8031152018338945839
    assert m.raw["id"] == 5209304004


def test_conversation_id_from_string_forms() -> None:
    base = json.loads(VOICEMAIL)
    del base["conversationId"]
    assert parse_message(base).conversation_id == 8031152018338945839
    base["conversationId"] = "8031152018338945839"
    assert parse_message(base).conversation_id == 8031152018338945839
    del base["conversationId"], base["conversation"]
    assert parse_message(base).conversation_id is None


def test_ids_int_or_string_agree() -> None:
    a = json.loads(VOICEMAIL)
    b = json.loads(VOICEMAIL)
    b["id"] = "5209304004"
    b["attachments"][0]["id"] = "5209304004"
    b["extensionId"] = 230919004
    assert parse_message(a) == parse_message(b)
    assert hash(parse_message(a)) == hash(parse_message(b))


def test_fax_with_recipient_status_and_filename_spelling() -> None:
    fax = {
        "uri": "https://platform.ringcentral.com/restapi/v1.0/account/1/extension/2/message-store/1277646004",
        "id": 1277646004, "type": "Fax", "direction": "Outbound", "messageStatus": "SendingFailed",
        "to": [{"phoneNumber": "+18774880001", "messageStatus": "SendingFailed",
                "faxErrorCode": "LineBusy"},
               {"phoneNumber": "+18774880002", "messageStatus": "Sent"}],
        "readStatus": "Unread", "priority": "Normal",
        "attachments": [{"id": 1, "uri": "https://platform.ringcentral.com/a/1",
                         "type": "RenderedDocument", "contentType": "application/pdf",
                         "filename": "fax.pdf"},
                        {"id": "2", "uri": "https://media.ringcentral.com:443/a/2",
                         "type": "MmsAttachment", "contentType": "image/png", "size": 13,
                         "fileName": "filename.png", "width": 640, "height": 480}],
        "availability": "Alive", "faxResolution": "High", "faxPageCount": 0,
        "creationTime": "2019-07-31T20:01:58Z", "coverIndex": 2,
    }
    m = parse_message(fax)
    assert m.from_ is None  # outbound faxes have no sender
    assert [p.message_status for p in m.to] == ["SendingFailed", "Sent"]
    assert m.to[0].fax_error_code == "LineBusy"
    assert m.attachments[0].file_name == "fax.pdf"
    assert m.attachments[1].file_name == "filename.png"
    assert m.attachments[1].size == 13 and m.attachments[1].width == 640
    assert m.attachments[1].uri == "https://media.ringcentral.com:443/a/2"
    assert m.fax_resolution == "High" and m.fax_page_count == 0 and m.cover_index == 2
    assert m.last_modified_time is None


def test_unknown_enums_and_absent_fields_survive() -> None:
    m = parse_message({"id": 1, "creationTime": "2020-01-01T00:00:00Z",
                       "type": "Hologram", "messageStatus": "Teleported",
                       "attachments": [{"id": 5, "uri": "https://x/5", "size": "not-a-number"}],
                       "to": "garbage", "from": None})
    assert m.type == "Hologram" and m.message_status == "Teleported"
    assert m.availability == "Alive" and m.to == () and m.from_ is None
    assert m.attachments[0].size is None and m.attachments[0].type is None


def test_required_fields() -> None:
    with pytest.raises(ModelError):
        parse_message({"id": 1})  # an ISync stub is not a message
    with pytest.raises(ModelError):
        parse_message({"creationTime": "2020-01-01T00:00:00Z"})
    with pytest.raises(ModelError):
        parse_message([1, 2])
    with pytest.raises(ModelError):
        parse_attachment({"id": 1})
    with pytest.raises(ModelError):
        parse_call_log_record({"id": "x"})
    with pytest.raises(ModelError):
        parse_archive_ref({"size": 3})


def test_negative_size_is_unknown() -> None:
    assert parse_attachment({"id": 1, "uri": "u", "size": -1}).size is None


def test_extension_phone_number() -> None:
    ext = parse_extension({"id": 230919004, "extensionNumber": "101", "type": "User",
                           "status": "Enabled", "contact": {"firstName": "Jane",
                                                            "lastName": "Doe",
                                                            "email": "j@x"},
                           "permissions": {"admin": {"enabled": True}},
                           "account": {"id": "401836781008"}})
    assert ext.id == "230919004" and ext.number == "101" and ext.name == "Jane Doe"
    assert ext.is_admin and ext.account_id == "401836781008" and ext.email == "j@x"
    plain = parse_extension({"id": "5", "name": "Support Queue", "type": "Department"})
    assert plain.name == "Support Queue" and not plain.is_admin and plain.status is None
    num = parse_phone_number({"id": 1, "phoneNumber": "+16505550100", "usageType":
                              "DirectNumber", "features": ["CallerId", "SmsSender"]})
    assert num.can_send_sms and not num.can_send_mms and num.features == ("CallerId",
                                                                          "SmsSender")


def test_call_log_record_with_legs_and_recordings() -> None:
    rec = parse_call_log_record({
        "uri": "https://platform.ringcentral.com/restapi/v1.0/account/1/call-log/IVWtSyis720zMEA",
        "id": "IVWtSyis720zMEA", "sessionId": 4503991004, "telephonySessionId": "s-a0d1",
        "startTime": "2019-07-31T20:01:58.000Z", "duration": 95, "type": "Voice",
        "direction": "Inbound", "action": "Phone Call", "result": "Accepted",
        "from": {"phoneNumber": "+14155550100", "name": "Bob"},
        "to": {"extensionNumber": "101", "extensionId": 230919004},
        "extension": {"id": 230919004, "uri": "u"},
        "recording": {"id": "401786818008", "uri": "https://platform/r/401786818008",
                      "type": "Automatic",
                      "contentUri": "https://media.ringcentral.com:443/restapi/v1.0/account/1/recording/401786818008/content"},
        "message": {"id": "5209304004", "type": "VoiceMail", "uri": "u"},
        "lastModifiedTime": "2019-07-31T20:03:40.000Z",
        "legs": [
            {"startTime": "2019-07-31T20:01:58.000Z", "duration": 40, "legType": "Accept",
             "master": True, "recording": {"id": "401786818008", "contentUri": "c1"}},
            {"startTime": "2019-07-31T20:02:40.000Z", "duration": 55, "legType": "Transfer",
             "recording": {"id": "401786818009", "contentUri": "c2"},
             "extension": {"id": "230919005"}},
        ],
    })
    assert rec.id == "IVWtSyis720zMEA" and rec.session_id == "4503991004"
    assert rec.extension_id == "230919004" and rec.message_id == "5209304004"
    assert rec.to is not None and rec.to.extension_id == "230919004"
    assert rec.recording is not None and rec.recording.content_uri is not None
    assert rec.recording.content_uri.startswith("https://media.ringcentral.com:443/")
    assert [r.id for r in rec.recordings] == ["401786818008", "401786818009"]
    assert rec.legs[1].extension_id == "230919005" and rec.legs[0].master is True
    assert not rec.deleted and not rec.short_recording
    short = parse_call_log_record({"id": "a", "startTime": "2020-01-01T00:00:00Z",
                                   "shortRecording": True, "deleted": "true"})
    assert short.recording is None and short.short_recording and short.deleted
    assert short.recordings == ()


def test_recording_greeting_rules_report_archive() -> None:
    r = parse_recording({"id": "401786818008", "contentUri": "https://media/x",
                         "contentType": "audio/x-wav", "duration": 30})
    assert r.duration == 30 and r.content_type == "audio/x-wav"
    g = parse_greeting({"uri": "u", "id": "751564020", "type": "Voicemail",
                        "contentType": "audio/wav", "contentUri": "https://media/g",
                        "answeringRule": {"uri": "u", "id": 3107589020}})
    assert g.id == "751564020" and g.answering_rule_id == "3107589020"
    rule = parse_answering_rule({"id": "business-hours-rule", "type": "BusinessHours",
                                 "name": "Work", "enabled": True, "greetings": [
                                     {"type": "Voicemail", "custom": {"id": "751564020"}},
                                     {"type": "Introductory",
                                      "preset": {"id": "65536", "name": "Default", "uri": "p"}},
                                     "junk"]})
    assert rule.custom_greeting_ids == ("751564020",)
    assert rule.greetings[1].preset_name == "Default" and len(rule.greetings) == 2
    task = parse_report_task({
        "id": "178009004-178009004-25464a39df3f4b4390801d80e5e13a01", "uri": "u",
        "status": "Completed", "accountId": "178009004", "extensionId": 178009004,
        "creationTime": "2019-05-21T17:54:00Z", "lastModifiedTime": "2019-05-21T17:55:00Z",
        "startTime": "2019-05-21T17:54:01Z", "finishTime": "2019-05-21T17:55:00Z",
        "dateFrom": "2019-05-01T00:00:00Z", "dateTo": "2019-05-21T00:00:00Z",
        "messageTypes": ["Fax", "VoiceMail"]})
    assert task.is_finished and task.message_types == ("Fax", "VoiceMail")
    assert task.extension_id == "178009004" and task.creation_time is not None
    assert not parse_report_task({"id": "x", "status": "InProgress"}).is_finished
    arc = parse_archive_ref({"size": 14168, "uri": "https://platform/x/archive/0"})
    assert arc.size == 14168 and arc.uri.endswith("/archive/0")


def test_models_are_frozen() -> None:
    m = parse_message(json.loads(VOICEMAIL))
    with pytest.raises(AttributeError):
        m.id = "x"  # type: ignore[misc]
    assert "raw" not in repr(m)
