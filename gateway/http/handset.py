"""What a handset does over HTTP: dial a USSD code, answer and cancel the screen, send an SMS,
read its inbox."""

from __future__ import annotations

from aiohttp import web

from gateway.http import models
from gateway.http.endpoint import (
    MAX_LONG_POLL_S,
    Call,
    NoBody,
    handles,
    json_response,
    query_number,
)


@handles(models.DialRequest)
async def dial(call: Call[models.DialRequest]) -> web.Response:
    reply = await call.runtime.ussd.dial(call.body.msisdn, call.body.code)
    return json_response(reply.to_json())


@handles(models.AnswerRequest)
async def answer(call: Call[models.AnswerRequest]) -> web.Response:
    reply = await call.runtime.ussd.answer(call.request.match_info["session_id"], call.body.input)
    return json_response(reply.to_json())


@handles(NoBody)
async def cancel(call: Call[NoBody]) -> web.Response:
    await call.runtime.ussd.cancel(call.request.match_info["session_id"])
    return web.Response(status=204)


@handles(models.SmsRequest)
async def send_sms(call: Call[models.SmsRequest]) -> web.Response:
    body = call.body
    tlvs = None if body.tlvs is None else [t.model_dump() for t in body.tlvs]
    accepted = await call.runtime.sms.submit(body.sender, body.to, body.text, tlvs)
    return json_response(accepted.to_json(), status=202)


@handles(NoBody, msisdn="given")
async def inbox(call: Call[NoBody]) -> web.Response:
    after = int(query_number(call.request, "after", 0, 0, 2**62))
    wait = query_number(call.request, "wait", 0, 0, MAX_LONG_POLL_S)
    if wait > 0:
        messages = await call.runtime.inbox.wait(call.msisdn, after, wait)
    else:
        messages = await call.runtime.inbox.list(call.msisdn, after)
    return json_response({"messages": [m.to_json() for m in messages]})
