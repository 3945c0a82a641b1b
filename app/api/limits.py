"""The request body limit: a pure ASGI middleware that answers 413 without reading a large body.

A body whose Content-Length is over the limit is refused before the app runs. A body without one (chunked)
is counted as the app reads it: past the limit, the app's next read raises, nothing more is read, and the
app's answer to that error is replaced with the 413. Once the answer is complete, uvicorn discards what
still arrives of the body instead of buffering it, and the connection stays usable. Closing it instead
would make the kernel reset a connection with unread data, and the client could lose the 413 itself; only
a client that waits for `100 Continue` before sending its body is told the connection closes.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem
from app.errors import ContentTooLarge


class _BodyTooLarge(Exception):
    """What the app's `receive` raises once the body it reads has passed the limit."""


class BodyLimit:
    """Answer 413 problem+json (`body_too_large`) to request bodies larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse by Content-Length at once, or count the chunks the app reads."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        over = started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:  # an app that caught the error and reads on still gets no more of the body
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to the error its read raised (FastAPI's 400): the 413 replaces it
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ContentTooLarge("body_too_large", f"Request bodies may be at most {self.max_bytes} bytes")
        request = Request(scope)
        response = problem(request, error.status, error.code, error.title, error.detail)
        if request.headers.get("expect", "").lower() == "100-continue":
            # its body may never come, and the next request cannot be told from it: close after the answer
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent (chunked) or unreadable (the server refuses those)."""
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
