"""A real webhook endpoint for notification tests: an HTTP server on a free local port
that keeps every JSON POST it gets (path, headers, body)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.localstack import free_port


@dataclass
class Receiver:
    """What the endpoint at `url` received so far."""

    url: str
    _posts: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, post: dict[str, Any]) -> None:
        with self._lock:
            self._posts.append(post)

    def posts(self) -> list[dict[str, Any]]:
        """Every POST: `path`, `headers` (lower-case names) and the `json` body."""
        with self._lock:
            return list(self._posts)

    def messages(self) -> list[dict[str, Any]]:
        """The JSON bodies."""
        return [post["json"] for post in self.posts()]

    def about(self, event: str) -> list[dict[str, Any]]:
        """The bodies that report `event`."""
        return [message for message in self.messages() if message.get("event") == event]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver at `http://127.0.0.1:<free port>/hooks/mlops`; stopped on exit."""
    port = free_port()
    box = Receiver(url=f"http://127.0.0.1:{port}/hooks/mlops")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.keep(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": json.loads(body),
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
