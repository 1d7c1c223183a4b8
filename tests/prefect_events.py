"""Send this process's Prefect clients and events to a given server, and wait for them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from prefect.events.clients import PrefectEventsClient
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings


def drain_events(timeout: float = 15.0) -> None:
    """Wait until what this process emitted has been sent.

    `EventsWorker.drain_all` only hands back an awaitable (and waits for nothing) when an
    event loop runs in the calling thread; in a thread of its own it always waits.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(EventsWorker.drain_all, timeout).result()


@contextmanager
def on_server(api_url: str) -> Iterator[None]:
    """Prefect clients and events of this process go to `api_url` (sent before leaving)."""
    EventsWorker.set_client_override(PrefectEventsClient, api_url=api_url)
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield
            drain_events()
    finally:
        EventsWorker.set_client_override(None)
