"""``/restapi/oauth/token``, ``/revoke`` and ``/authorize`` (Auth group; docs/ringcentral.md
§13 B)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import emulator_of, json_response
from rcfs.emulator.oauth import bad_media_type


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise bad_media_type()
    form = await request.form()
    return {k: str(v) for k, v in form.items()}


def _basic(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "basic" else None


async def token(request: Request) -> Response:
    emu = emulator_of(request)
    form = await _form(request)
    app = emu.tokens.authenticate_client(_basic(request), form)
    emu.throttle(request, app.client_id, emu.tokens.owner_hint(form), "Auth")
    body = emu.tokens.grant(app, form, lambda owner: owner in emu.store.extensions)
    return json_response(body)


async def revoke(request: Request) -> Response:
    emu = emulator_of(request)
    form = await _form(request)
    tok = form.get("token") or request.query_params.get("token", "")
    app = emu.tokens.authenticate_client(_basic(request), form)
    emu.throttle(request, app.client_id, emu.tokens.owner_hint(
        {"grant_type": "refresh_token", "refresh_token": tok}), "Auth")
    emu.tokens.revoke(tok)
    return Response(status_code=200)


async def authorize(request: Request) -> Response:
    emu = emulator_of(request)
    params = dict(request.query_params)
    hint = params.get("login_hint", "")
    owner = next(
        (e for e in emu.store.extensions.values()
         if hint and hint in (e.number, str(e.id), e.email)),
        next(iter(emu.store.extensions.values())),
    )
    emu.throttle(request, params.get("client_id", ""), str(owner.id), "Auth")
    location = emu.tokens.authorize(params, owner.id)
    return RedirectResponse(location, status_code=302)


def routes() -> list[BaseRoute]:
    return [
        Route("/restapi/oauth/token", token, methods=["POST"]),
        Route("/restapi/oauth/revoke", revoke, methods=["POST"]),
        Route("/restapi/oauth/authorize", authorize, methods=["GET"]),
    ]
