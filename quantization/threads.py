"""A bounded number of torch intra-op threads for one block of code.

torch's thread count is process-wide: fine-tuning and latency measurements set it (one
thread: small layers gain nothing from more, and timings stay comparable on a busy
machine) and put back what they found, so they leave the process as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` (at least 1) intra-op threads, restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
