"""Contract of the emulator's WebSocket gateway (docs/ringcentral.md §12): token, ConnectionDetails,
tunnelled requests and subscriptions, event bodies, heartbeats, timeouts, recovery with
replay, connection limits and the admin faults. The client is our own (tests/ws_test_client).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.emulator_proc import EmulatorProc, limited_client, verify_for
from tests.emulator_support import admin_async
from tests.ws_test_client import GatewayClient, open_websocket_url, socket_url, ws_token

MS = "/restapi/v1.0/account/~/extension/~/message-store"


def _token(emu: EmulatorProc) -> dict[str, Any]:
    return ws_token(emu, emu.token())



async def _add(emu: EmulatorProc, **spec: Any) -> dict[str, Any]:
    spec.setdefault("extension_id", emu.user(admin=True)["extension_id"])
    return await admin_async(emu, "POST", "/_emulator/messages", spec)  # type: ignore[no-any-return]


def test_wstoken_shape_group_and_permission(emu: EmulatorProc) -> None:
    tok = _token(emu)
    assert set(tok) == {"ws_access_token", "uri", "expires_in"}
    assert tok["expires_in"] == 600
    assert tok["uri"] == emu.info["platform_url"].replace("http", "ws", 1) + "/ws"
    entry = [e for e in emu.requests() if e["path"] == "/restapi/oauth/wstoken"][-1]
    assert entry["group"] == "Auth" and entry["status"] == 200
    with limited_client(emu, emu.user(admin=True)) as limited:
        r = limited.post("/restapi/oauth/wstoken")
    assert r.status_code == 403
    assert r.json()["errors"][0]["errorCode"] == "CMN-401"
    assert "WebSocket" in r.json()["message"]


def test_wstoken_counts_in_the_auth_group_at_default_limits(
        start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--data-seed", "1")
    access = emu.token()  # 1 Auth request of 5
    codes = []
    for _ in range(5):
        r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/wstoken",
                       headers={"Authorization": f"Bearer {access}"},
                       verify=verify_for(emu.info))
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 200, 429]
    assert r.json()["errorCode"] == "CMN-301" and "Retry-After" in r.headers


async def test_connection_details_and_missing_or_bad_token(emu: EmulatorProc) -> None:
    tok = _token(emu)
    async with open_websocket_url(socket_url(tok)) as ws:
        meta, body = await GatewayClient(ws).recv()
    assert meta["type"] == "ConnectionDetails" and meta["status"] == 200
    assert meta["wsc"]["token"] and isinstance(meta["wsc"]["sequence"], int)
    assert body["recoveryTimeout"] == 180 and body["idleTimeout"] == 1800
    assert body["absoluteTimeout"] == 86400 and body["recoveryBufferSize"] == 100
    assert body["maxConnectionsPerSession"] == 50 and "recoveryState" not in body
    async with open_websocket_url(tok["uri"]) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 4400
    async with open_websocket_url(tok["uri"] + "?access_token=nope") as ws:
        meta, body = json.loads(await ws.get_message())
        assert meta["type"] == "Error" and body["errorCode"].startswith("OAU-")
        with pytest.raises(ConnectionClosed):
            await ws.get_message()


async def test_heartbeat_and_tunnelled_rest(emu: EmulatorProc) -> None:
    async with open_websocket_url(socket_url(_token(emu))) as ws:
        c = GatewayClient(ws)
        await c.recv()
        await ws.send_message(json.dumps([{"type": "Heartbeat", "messageId": "hb-1"}]))
        meta, *_ = await c.next_of("Heartbeat")
        assert meta["messageId"] == "hb-1"
        meta, body = await c.request("GET", "/restapi/v1.0/account/~/extension/~")
        assert meta["status"] == 200 and body["id"] == int(emu.user(admin=True)["extension_id"])
        assert meta["headers"]["X-Rate-Limit-Group"] == "Light"
        meta, body = await c.request("GET", "/restapi/v1.0/account/~/extension/1")
        assert meta["status"] == 404 and body["errorCode"]


async def test_subscription_and_message_events(emu: EmulatorProc) -> None:
    admin = emu.user(admin=True)
    async with open_websocket_url(socket_url(_token(emu))) as ws:
        c = GatewayClient(ws)
        await c.recv()
        sub = await c.subscribe([MS, MS + "/instant?type=SMS",
                                 "/restapi/v1.0/account/~/extension/~/voicemail",
                                 "/restapi/v1.0/account/~/extension/~/fax?direction=Inbound"])
        assert sub["status"] == "Active" and sub["uri"] == f"/restapi/v1.0/subscription/{sub['id']}"
        assert sub["deliveryMode"] == {"transportType": "WebSocket", "encryption": False}
        assert all("~" not in f for f in sub["eventFilters"])
        assert 86000 < sub["expiresIn"] <= 86400

        async def events(n: int) -> list[dict[str, Any]]:
            out = []
            for _ in range(n):
                meta, env = await c.next_of("ServerNotification")
                assert meta["wsc"]["sequence"] > 0 and env["subscriptionId"] == sub["id"]
                assert env["ownerId"] == admin["extension_id"]
                out.append(env)
            return out

        vm = await _add(emu, type="VoiceMail", duration=12)
        got = {e["event"]: e["body"] for e in await events(2)}
        change = got[MS]["changes"][0]
        assert change["type"] == "VoiceMail" and change["newMessageIds"] == [vm["id"]]
        assert got["/restapi/v1.0/account/~/extension/~/voicemail"]["id"] in (vm["id"],
                                                                             str(vm["id"]))
        fax = await _add(emu, type="Fax", pages=2)
        got = {e["event"]: e["body"] for e in await events(2)}
        assert got["/restapi/v1.0/account/~/extension/~/fax?direction=Inbound"][
            "faxPageCount"] == 2
        sms = await _add(emu, type="SMS", text="hello socket")
        got = {e["event"]: e["body"] for e in await events(2)}
        assert got[MS + "/instant?type=SMS"]["subject"] == "hello socket"
        assert got[MS]["changes"][0]["newMessageIds"] == [sms["id"]]
        # Read status through the tunnel, then a delete: message-store "updated" events.
        meta, _ = await c.request("PUT", f"{MS}/{fax['id']}", {"readStatus": "Read"})
        assert meta["status"] == 200
        (env,) = await events(1)
        assert env["body"]["changes"][0] == {"type": "Fax", "newCount": 0, "updatedCount": 1}
        await admin_async(emu, "DELETE", f"/_emulator/messages/{sms['id']}")
        (env,) = await events(1)
        assert env["body"]["changes"][0]["type"] == "SMS"
        assert env["body"]["changes"][0]["updatedCount"] == 1


async def test_call_events_and_one_subscription_per_connection(emu: EmulatorProc) -> None:
    async with open_websocket_url(socket_url(_token(emu))) as ws:
        c = GatewayClient(ws)
        await c.recv()
        await c.subscribe([MS])
        sub = await c.subscribe(["/restapi/v1.0/account/~/extension/~/telephony/sessions"])
        call = await admin_async(emu, "POST", "/_emulator/calls", {
            "extension_id": emu.user(admin=True)["extension_id"], "recording": True})
        meta, env = await c.next_of("ServerNotification")
        assert env["subscriptionId"] == sub["id"]  # the message-store one was replaced
        party = env["body"]["parties"][0]
        assert party["status"]["code"] == "Disconnected"
        assert party["recordings"] == [{"id": call["recording_id"], "active": False}]
        bad = await c.request("POST", "/restapi/v1.0/subscription", {
            "eventFilters": ["/restapi/v1.0/account/~/presence-nonsense"],
            "deliveryMode": {"transportType": "WebSocket"}})
        assert bad[0]["status"] == 400
        gone = await c.request("DELETE", f"/restapi/v1.0/subscription/{sub['id']}")
        assert gone[0]["status"] == 204


async def test_other_users_mailbox_needs_admin(emu: EmulatorProc) -> None:
    admin, user = emu.user(admin=True), emu.user(admin=False)
    tok = ws_token(emu, emu.token(user))
    async with open_websocket_url(socket_url(tok)) as ws:
        c = GatewayClient(ws)
        await c.recv()
        reply = await c.request("POST", "/restapi/v1.0/subscription", {
            "eventFilters": [f"/restapi/v1.0/account/~/extension/{admin['extension_id']}"
                             "/message-store"],
            "deliveryMode": {"transportType": "WebSocket"}})
        assert reply[0]["status"] == 403


async def _subscribed(emu: EmulatorProc, tok: dict[str, Any]) -> tuple[str, str]:
    """Open, subscribe, take the wsc, and leave by a dropped connection."""
    async with open_websocket_url(socket_url(tok)) as ws:
        c = GatewayClient(ws)
        meta, _ = await c.recv()
        sub = await c.subscribe([MS])
        await admin_async(emu, "POST", "/_emulator/ws", {"action": "drop"})
        with pytest.raises(ConnectionClosed), trio.fail_after(5):
            while True:
                await ws.get_message()
    return meta["wsc"]["token"], sub["id"]


async def test_recovery_replays_what_was_missed(emu: EmulatorProc) -> None:
    tok = _token(emu)
    wsc, sub_id = await _subscribed(emu, tok)
    missed = [(await _add(emu, type="SMS", text=f"missed {i}"))["id"] for i in range(3)]
    async with open_websocket_url(socket_url(tok, wsc)) as ws:  # the token is reusable
        c = GatewayClient(ws)
        meta, details = await c.recv()
        assert details["recoveryState"] == "Successful"
        replayed = []
        for _ in missed:
            _, env = await c.next_of("ServerNotification")
            assert env["subscriptionId"] == sub_id
            replayed += env["body"]["changes"][0]["newMessageIds"]
        assert replayed == missed
        # Recovering again with the newest wsc replays nothing twice.
        newest = c.seen[-1][0]["wsc"]["token"]
    async with open_websocket_url(socket_url(tok, newest)) as ws:
        c = GatewayClient(ws)
        _, details = await c.recv()
        assert details["recoveryState"] == "Successful"
        late = await _add(emu, type="SMS", text="live")
        _, env = await c.next_of("ServerNotification")
        assert env["body"]["changes"][0]["newMessageIds"] == [late["id"]]


async def test_refused_expired_and_malformed_recovery(emu: EmulatorProc) -> None:
    tok = _token(emu)
    wsc, _ = await _subscribed(emu, tok)
    await admin_async(emu, "POST", "/_emulator/ws", {"action": "refuse_recovery"})
    async with open_websocket_url(socket_url(tok, wsc)) as ws:
        c = GatewayClient(ws)
        _, details = await c.recv()
        assert details["recoveryState"] == "Failed" and details["recoveryErrorCode"]
        # The subscription was lost with the session: nothing arrives until a new POST.
        reply = await c.request("GET", "/restapi/v1.0/subscription")
        assert reply[1] == {"records": []}
    wsc, _ = await _subscribed(emu, tok)
    await admin_async(emu, "POST", "/_emulator/clock", {"advance": 181})
    tok = _token(emu)  # the clock jump expired the ws token too
    async with open_websocket_url(socket_url(tok, wsc)) as ws:
        _, details = await GatewayClient(ws).recv()
        assert details["recoveryState"] == "Failed"
    async with open_websocket_url(socket_url(tok, "bogus!!")) as ws:
        meta, body = json.loads(await ws.get_message())
        assert meta["type"] == "Error" and body["errorCode"] == "WSG-400"


async def test_idle_and_absolute_timeouts(emu: EmulatorProc) -> None:
    tok = _token(emu)
    async with open_websocket_url(socket_url(tok)) as ws:
        c = GatewayClient(ws)
        await c.recv()
        await admin_async(emu, "POST", "/_emulator/clock", {"advance": 1801})
        meta, body = await c.next_of("Error")
        assert body == {"errorCode": "WSG-902", "message": "Idle timeout expired"}
        with pytest.raises(ConnectionClosed), trio.fail_after(5):
            await ws.get_message()
    await admin_async(emu, "POST", "/_emulator/config", {"ws_absolute_timeout": 1.5})
    try:
        async with open_websocket_url(socket_url(_token(emu))) as ws:
            c = GatewayClient(ws)
            await c.recv()

            async def beat() -> None:  # heartbeats keep it from idling out
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await ws.send_message(json.dumps([{"type": "Heartbeat",
                                                           "messageId": "x"}]))
                        await trio.sleep(0.3)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(beat)
                _, body = await c.next_of("Error", timeout=10)
                nursery.cancel_scope.cancel()
            assert c.seen.count([{"type": "Heartbeat", "messageId": "x", "status": 200}]) >= 2
    finally:
        await admin_async(emu, "POST", "/_emulator/config", {"ws_absolute_timeout": 86400})
    assert body["errorCode"] == "WSG-903"


async def test_faults_stall_malformed_expired_token(emu: EmulatorProc) -> None:
    tok = _token(emu)
    async with open_websocket_url(socket_url(tok)) as ws:
        c = GatewayClient(ws)
        await c.recv()
        await admin_async(emu, "POST", "/_emulator/ws", {"action": "stall", "seconds": 30})
        await ws.send_message(json.dumps([{"type": "Heartbeat", "messageId": "s"}]))
        with pytest.raises(trio.TooSlowError):
            await c.recv(timeout=1.0)
        await admin_async(emu, "POST", "/_emulator/ws", {"action": "unstall"})
        await admin_async(emu, "POST", "/_emulator/ws", {"action": "malformed"})
        text = await c.raw()
        with pytest.raises(ValueError):
            json.loads(text)
        await admin_async(emu, "POST", "/_emulator/ws", {"action": "expire_token"})
    async with open_websocket_url(socket_url(tok)) as ws:
        meta, body = json.loads(await ws.get_message())
        assert meta["type"] == "Error" and body["errorCode"].startswith("OAU-")


async def test_connection_limit_per_session(emu: EmulatorProc) -> None:
    await admin_async(emu, "POST", "/_emulator/config", {"ws_max_connections": 2})
    try:
        tok = _token(emu)
        async with open_websocket_url(socket_url(tok)) as a, \
                open_websocket_url(socket_url(tok)) as b:
            for ws in (a, b):
                assert json.loads(await ws.get_message())[0]["type"] == "ConnectionDetails"
            async with open_websocket_url(socket_url(tok)) as c:
                meta, body = json.loads(await c.get_message())
                assert meta["type"] == "Error" and body["errorCode"] == "WSG-1002"
    finally:
        await admin_async(emu, "POST", "/_emulator/config", {"ws_max_connections": 50})


async def test_sends_and_their_status_changes_are_pushed(emu: EmulatorProc) -> None:
    """A text sent through the socket (a tunnelled POST): its new message, then its
    Queued -> Sent change, pushed when due without any request driving the clock."""
    async with open_websocket_url(socket_url(_token(emu))) as ws:
        c = GatewayClient(ws)
        await c.recv()
        await c.subscribe([MS])
        _, nums = await c.request("GET", "/restapi/v1.0/account/~/extension/~/phone-number")
        sender = next(n["phoneNumber"] for n in nums["records"]
                      if "SmsSender" in n.get("features", []))
        meta, sms = await c.request("POST", "/restapi/v1.0/account/~/extension/~/sms", {
            "from": {"phoneNumber": sender}, "to": [{"phoneNumber": "+14155550123"}],
            "text": "over the socket"})
        assert meta["status"] == 200 and sms["messageStatus"] == "Queued"
        _, env = await c.next_of("ServerNotification")
        assert env["body"]["changes"][0]["newMessageIds"] == [int(sms["id"])]
        _, env = await c.next_of("ServerNotification", timeout=10)
        assert env["body"]["changes"][0] == {"type": "SMS", "newCount": 0, "updatedCount": 1}
