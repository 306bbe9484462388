"""The emulator starts as a process, writes its port file, and answers on all three origins."""

from __future__ import annotations

import httpx

from tests.emulator_proc import EmulatorProc, verify_for


def test_port_file_and_origins(emulator: EmulatorProc) -> None:
    info = emulator.info
    for key in ("platform_url", "media_url", "admin_url", "client_id", "client_secret",
                "account_id", "users"):
        assert info[key], key
    assert info["platform_url"].startswith("http://127.0.0.1:")
    assert len({info["platform_url"], info["media_url"], info["admin_url"]}) == 3
    admins = [u for u in info["users"] if u["admin"]]
    assert len(admins) == 1 and len(info["users"]) >= 4
    for base in (info["platform_url"], info["media_url"]):
        r = httpx.get(base + "/restapi/v1.0")
        assert r.status_code == 200 and r.json()["uriString"] == "v1.0"
        assert "x-rate-limit-group" not in r.headers  # A5: NoThrottling
        assert r.headers["rcrequestid"] and r.headers["routingkey"]


def test_tls_mode(start_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = start_emulator("--tls")
    info = emu.info
    assert info["platform_url"].startswith("https://127.0.0.1:")
    r = httpx.get(info["platform_url"] + "/restapi", verify=verify_for(info))
    assert r.status_code == 200
    tok = emu.token()
    r = httpx.get(info["platform_url"] + "/restapi/v1.0/account/~",
                  headers={"Authorization": f"Bearer {tok}"}, verify=verify_for(info))
    assert r.status_code == 200
    assert r.json()["id"] == int(info["account_id"])
    # The admin API is HTTPS too, under the same generated CA.
    assert info["admin_url"].startswith("https://")
    assert emu.admin("GET", "/_emulator/summary")["account_id"] == int(info["account_id"])
