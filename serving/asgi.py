"""The raw ASGI side of the lean `POST /v1/predict` path: no Starlette objects.

The service reads the body and sends its `Answer` itself, with these helpers, because
a plain ASGI handler answers about three times as many requests as a FastAPI route
(see `serving.app`). The other endpoints' routes reuse `Answer`, `new_request_id` and
the body checks (`require_json`, `read_body`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from serving.errors import RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = "application/json"
_JSON_HEADER = (b"content-type", JSON.encode())
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(slots=True)
class Answer:
    """An HTTP answer of the service, plus work to do once it is sent."""

    status: int
    body: bytes
    headers: dict[str, str]
    after: Callable[[], None] | None = None

    @classmethod
    def refused(cls, exc: RequestError, request_id: str) -> Answer:
        """The error document of a refused request, with the headers it asks for."""
        return cls(exc.status, exc.body(request_id), {"x-request-id": request_id, **exc.headers})


def new_request_id(given: str | None) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a fresh random one."""
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def require_json(content_type: str | None) -> None:
    """Refuse a body declared as something else than JSON (no Content-Type is taken as JSON).

    Raises:
        RequestError: 415.
    """
    if content_type is not None and "json" not in content_type.lower():
        raise RequestError(
            415, "unsupported_media_type", f"send application/json, not {content_type}"
        )


async def read_body(receive: Receive, max_bytes: int, declared: str | None = None) -> bytes:
    """The request body, refused before reading when its `Content-Length` (`declared`)
    exceeds `max_bytes`, and as soon as it grows past `max_bytes` otherwise.

    Raises:
        RequestError: 413 for a body too large, 400 when the client went away.
    """
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "disconnected", "the client went away")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> RequestError:
    return RequestError(
        413,
        "body_too_large",
        f"the body exceeds {max_bytes} bytes (serving.max_body_bytes)",
        "body",
    )


async def send_answer(send: Send, answer: Answer) -> None:
    """Send `answer` as a JSON response (its `after` work is the caller's)."""
    headers = [_JSON_HEADER, (b"content-length", str(len(answer.body)).encode())]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
