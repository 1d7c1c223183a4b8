"""Scoring a request's rows on the models that answer them.

Each row goes to the model the router picks for it (`serving.routing`, sticky per
entity key, else per request id), unless the client pinned a version, which then
answers every row. The champion's and the challenger's rows of one request are
submitted to their micro-batchers together (`serving.batching`). A challenger that
fails costs its rows nothing but latency: the champion answers them instead, and the
failure is counted and logged. A champion that fails fails the request (500).

What an answer leaves behind (prediction log, metrics, shadow scoring,
`serving.recording`) comes back as a closure, run once the answer is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops.rollout.state import Variant
from serving.errors import RequestError
from serving.loader import LoadedModel, ServingSnapshot
from serving.recording import PredictionRecorder
from serving.routing import route

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scored:
    """A scored request: which model answered each row, and with what."""

    answered_by: list[LoadedModel]
    probabilities: list[list[float]]
    labels: list[int | str]
    after: Callable[[], None]
    """The prediction log, the metrics and any shadow scoring: run once answered."""


async def score_rows(
    recorder: PredictionRecorder,
    snapshot: ServingSnapshot,
    champion: LoadedModel,
    rows: list[dict[str, Any]],
    keys: list[str | int | None],
    request_id: str,
    started: float,
    pinned: LoadedModel | None = None,
) -> Scored:
    """Route each row (unless `pinned` answers them all) and score it.

    Args:
        keys: each row's entity key (None: the row is routed by the request id).
        started: `time.perf_counter()` when the request arrived (the logged latency).

    Raises:
        RequestError: 500 when the champion failed (counted; nothing is logged).
    """
    n = len(rows)
    challenger = snapshot.challenger
    answered_by: list[LoadedModel] = [pinned or champion] * n
    mirrored: list[int] = []
    if pinned is None and challenger is not None and snapshot.routable_challenger:
        rollout = snapshot.rollout
        for i in range(n):
            key = keys[i]
            decision = route(request_id if key is None else str(key), rollout, True)
            if decision.answer is Variant.CHALLENGER:
                answered_by[i] = challenger
            if decision.mirror_to_challenger:
                mirrored.append(i)
    challenger_rows = [i for i in range(n) if answered_by[i] is not champion] if challenger else []
    failures: dict[int, str] = {}
    probabilities: list[list[float]] = [[] for _ in range(n)]
    if not challenger_rows:
        try:
            probabilities = await champion.batcher.submit(rows)
        except Exception as exc:
            raise _failed(recorder, champion, request_id, exc, n) from exc
    else:
        assert challenger is not None
        champion_rows = [i for i in range(n) if answered_by[i] is champion]
        outcome = await asyncio.gather(
            champion.batcher.submit([rows[i] for i in champion_rows]),
            challenger.batcher.submit([rows[i] for i in challenger_rows]),
            return_exceptions=True,
        )
        if isinstance(outcome[0], BaseException):
            raise _failed(recorder, champion, request_id, outcome[0], n) from outcome[0]
        for i, p in zip(champion_rows, outcome[0], strict=True):
            probabilities[i] = p
        if isinstance(outcome[1], BaseException):
            # The challenger failed: the champion answers instead, the error is logged.
            logger.warning("challenger v%s failed: %s", challenger.version, outcome[1])
            for i in challenger_rows:
                failures[i] = f"{type(outcome[1]).__name__}: {outcome[1]}"
                answered_by[i] = champion
            try:
                fallback = await champion.batcher.submit([rows[i] for i in challenger_rows])
            except Exception as exc:
                raise _failed(recorder, champion, request_id, exc, n) from exc
            for i, p in zip(challenger_rows, fallback, strict=True):
                probabilities[i] = p
        else:
            for i, p in zip(challenger_rows, outcome[1], strict=True):
                probabilities[i] = p

    labels: list[int | str] = [
        model.classes[p.index(max(p))] for model, p in zip(answered_by, probabilities, strict=True)
    ]
    latency = time.perf_counter() - started

    def after() -> None:
        recorder.record_answer(
            champion,
            challenger,
            rows,
            keys,
            answered_by,
            probabilities,
            labels,
            failures,
            request_id,
            latency,
            pinned=pinned is not None,
        )
        if mirrored and challenger is not None:
            recorder.score_shadow(challenger, rows, keys, mirrored, request_id)

    return Scored(answered_by, probabilities, labels, after)


def _failed(
    recorder: PredictionRecorder,
    champion: LoadedModel,
    request_id: str,
    exc: BaseException,
    rows: int,
) -> RequestError:
    """Count the champion's failure; the 500 to answer."""
    recorder.record_failure(champion, request_id, exc, rows)
    return RequestError(500, "prediction_failed", f"the model failed: {exc}")
