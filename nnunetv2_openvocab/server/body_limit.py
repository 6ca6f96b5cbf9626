"""Refuse request bodies over the upload limit before they are read (ASGI wrapper around the app).

A POST must declare its size (Content-Length, as curl, browsers and HTTP clients do for uploads): uvicorn's
HTTP parser then refuses a body longer than declared, so the declared size bounds what is received.
"""
from __future__ import annotations

import json

BODY_METHODS = (b"POST", b"PUT", b"PATCH")


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"].encode() in BODY_METHODS:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is None or not declared.isdigit():
                return await _refuse(send, 411, "header 'Content-Length': required for uploads; send the file with "
                                                "a declared size (curl -F does).")
            if int(declared) > self.max_bytes:
                return await _refuse(send, 413, f"request body: {int(declared)} bytes, over the server's limit of "
                                                f"{self.max_bytes} bytes; send a smaller case or raise "
                                                f"--max-upload-mb.")
        await self.app(scope, receive, send)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
