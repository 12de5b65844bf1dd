"""A captured ASGI app run as its own process by the failure tests (so it can be killed -9).

Usage: python capture_child_app.py COLLECTOR_URL TOKEN SPOOL_DIR PORT

GET /deny answers 403 (one `authz_fail` event each). GET /hold takes the spool's lock and never
gives it back: the emitter's drain thread then blocks, so later events stay on the in-memory
queue, which is what a kill -9 loses.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture


def main() -> None:
    url, token, spool, port = sys.argv[1:5]
    capture = Capture("child-api", collector=url, token=token, spool_dir=spool,
                      flush_interval=0.02, ship_interval=0.02, fsync=False)
    assert capture.shipper is not None
    assert capture.spool is not None
    capture.shipper.backoff_max = 0.2
    spool_lock = capture.spool._lock

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = 403
        if scope["path"] == "/hold":
            spool_lock.acquire()
            status = 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    uvicorn.run(ApiwatchMiddleware(app, capture), host="127.0.0.1", port=int(port),
                log_level="warning", proxy_headers=False, lifespan="off")


if __name__ == "__main__":
    main()
