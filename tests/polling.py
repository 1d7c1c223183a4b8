"""One way for tests to wait: poll a condition until it holds, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    what: str,
    timeout: float = 30.0,
    *,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
    alive: Callable[[], bool] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    A poll raising one of `tolerate` (a server busy or restarting) counts as "not yet";
    `alive` returning False (the process being waited for died) stops early. Fails with
    an AssertionError naming `what` (and the last tolerated error) after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
        except tolerate as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline or (alive is not None and not alive()):
            cause = f" (last poll: {last_error!r})" if last_error else ""
            raise AssertionError(f"not within {timeout:.0f} s: {what}{cause}")
        time.sleep(every)
