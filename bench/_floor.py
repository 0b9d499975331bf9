"""The floor of `bench/http.py`: bare Starlette answering the mock's paths with precomputed JSON bodies.

Run by the bench as `python -P bench/_floor.py --port N --bodies DIR` (`-P` keeps bench/ off sys.path,
where `bench/http.py` would shadow the standard library's `http`): DIR holds `record.json` (one
record, as `GET /api/crm/record/{id}` returns it) and `page.json` (a page of 25, as the records query
returns it). No auth, no validation, no state: what is left is Starlette's routing and uvicorn with
the same settings as the mock (one worker, httptools, access log off, the socket made by the mock's
own `bind()`), on the event loop given by `--loop` (uvloop by default). `--http wire` serves with the
mock's own protocol (`mockserver/wire.py`: one write per response); the default is stock uvicorn's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mockserver.server import bind
from mockserver.wire import OneWriteProtocol

OBJECTS = b'{"data":[]}'


def create_app(record: bytes, page: bytes) -> Starlette:
    async def one_record(request: Request) -> Response:
        if request.method != "GET":
            await request.body()  # a write reads its body, as the mock must
        status = 201 if request.method == "POST" else 200
        return Response(record, status_code=status, media_type="application/json")

    async def page_of_25(request: Request) -> Response:
        return Response(page, media_type="application/json")

    async def objects(request: Request) -> Response:
        return Response(OBJECTS, media_type="application/json")

    return Starlette(
        routes=[
            Route("/api/crm/record/{record_id}", one_record, methods=["GET", "PATCH"]),
            Route("/api/crm/record", one_record, methods=["POST"]),
            Route("/api/crm/records/query", page_of_25, methods=["GET"]),
            Route("/api/crm/objects", objects, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bodies", type=Path, required=True, help="folder with record.json and page.json")
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio", "auto"])
    ap.add_argument("--http", default="httptools", choices=["httptools", "wire"])
    args = ap.parse_args(argv)
    app = create_app((args.bodies / "record.json").read_bytes(), (args.bodies / "page.json").read_bytes())
    config = uvicorn.Config(
        app,
        loop=args.loop,
        http=OneWriteProtocol if args.http == "wire" else "httptools",
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="off",
        interface="asgi3",
        timeout_graceful_shutdown=2,
    )
    # Server.run() applies `loop` (serve() alone would not); one process, no reloader.
    uvicorn.Server(config).run(sockets=[bind(args.host, args.port)])


if __name__ == "__main__":
    main()
