"""What every request passes: the API key, the body size cap, the response count, and errors in
OpenAI's shape (for refused requests, invalid JSON, invalid fields and unknown routes)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import XuxieError
from .errors import APIError, error_body

PUBLIC_PATHS = ("/health", "/")  # and /static/…: the playground holds no data


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError):
        return JSONResponse(e.body, e.status, headers=e.headers)

    @app.exception_handler(XuxieError)
    async def xuxie_error(request: Request, e: XuxieError):
        return JSONResponse(error_body(str(e)), 400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body(f"the request body is not valid JSON ({first.get('msg', '')}); send a JSON object"), 400)
        param = ".".join(where) or None
        message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
        got = first.get("input")
        if param and not isinstance(got, dict | list) and got is not None:
            message += f" (got {str(got)[:80]!r})"
        return JSONResponse(error_body(message, param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        kind = "not_found" if e.status_code == 404 else "invalid_request_error"
        message = f"no route {request.method} {request.url.path}" if e.status_code == 404 else str(e.detail)
        return JSONResponse(error_body(message, kind), e.status_code)


class Guard:
    """Pure ASGI middleware: the API key (Bearer, compared in constant time) on every route but
    the health check and the playground's files, a cap on the request body (413), and a count of
    every response by route and status."""

    def __init__(self, app, api_key: str | None, max_body: int, count: Callable[[str, int], None]):
        self.app, self.max_body, self.count = app, max_body, count
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        original_send = send

        async def send(message):
            if message["type"] == "http.response.start":
                self.count(path, message["status"])
            await original_send(message)

        headers = dict(scope.get("headers") or [])
        if self.key is not None and path not in PUBLIC_PATHS and not path.startswith("/static/"):
            given = headers.get(b"authorization", b"")
            token = given[7:].strip() if given[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self.key):
                message = "missing API key: send 'Authorization: Bearer KEY'" if not given else "incorrect API key"
                return await _send_json(send, 401, error_body(message, "invalid_request_error", code="invalid_api_key"),
                                        {"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _send_json(send, 413, error_body(f"the request body is {int(length):,} bytes; this server takes at most "
                                                          f"{self.max_body:,}", code="request_too_large"))
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise APIError(413, f"the request body is over {self.max_body:,} bytes, this server's limit", code="request_too_large")
            return message
        return await self.app(scope, limited, send)


async def _send_json(send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
