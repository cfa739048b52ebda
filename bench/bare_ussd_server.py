"""The ceiling for the USSD benchmark: aiohttp answering the same JSON with no work at all."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import event_loop

_ids = itertools.count()


async def dial(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response(
        {
            "session_id": f"s{next(_ids)}",
            "msisdn": body["msisdn"],
            "text": "Меню\n1 Баланс",
            "end": False,
            "encoding": "ucs2",
        }
    )


async def answer(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response(
        {
            "session_id": request.match_info["sid"],
            "msisdn": "+79000000000",
            "text": "Баланс: 100,00 руб.",
            "end": True,
            "encoding": "ucs2",
        }
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/ussd", dial)
    app.router.add_post("/v1/ussd/{sid}", answer)
    app.router.add_get("/healthz", healthz)
    # The loop ussdsim itself runs on (gateway/event_loop.py), so the ratio compares the work.
    factory = event_loop.loop_factory()
    loop = factory() if factory is not None else None
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
