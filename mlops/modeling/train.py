"""Training loop: AdamW on cross-entropy, mini-batches, early stopping on validation loss.

Reproducibility is by construction rather than by global seeding: initialisation,
shuffling and dropout draw from generators seeded by `config.seed` and owned by the fit,
so the same config and data give bit-identical weights in any process, even while other
fits run in parallel threads.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.config import TrainConfig
from mlops.modeling.data import LabelEncoding, TabularArrays
from mlops.modeling.metrics import roc_auc
from mlops.modeling.network import DatasetRoles, NetSpec, TabularModel, TabularNet
from mlops.modeling.preprocessing import Preprocessor

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 1
"""Intra-op threads per fit unless told otherwise. Batches of a few hundred rows through
a small MLP gain nothing from more threads, and on a busy 2-core machine 2 threads made an
epoch 4-10x slower (spinning threads fighting other processes); parallel trials, not
parallel kernels, are how tuning uses the cores."""
_EVAL_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch achieved; handed to `on_epoch` (the tuner reports it to Optuna)."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_auc: float


@dataclass(frozen=True)
class FitResult:
    """The model restored to its best epoch, and how training went."""

    model: TabularModel
    history: tuple[EpochRecord, ...]
    best_epoch: int
    """1-based epoch with the lowest validation loss: the epoch count `refit` should use."""
    best_valid_loss: float
    stopped_early: bool
    seconds: float

    @property
    def best(self) -> EpochRecord:
        """The record of the epoch whose weights the model holds."""
        return self.history[self.best_epoch - 1]


@dataclass(frozen=True)
class _Tensors:
    numeric: torch.Tensor
    categorical: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, arrays: TabularArrays, device: torch.device) -> _Tensors:
        if arrays.labels is None:
            raise ValueError("training arrays need labels")
        return cls(
            torch.from_numpy(arrays.numeric).to(device),
            torch.from_numpy(arrays.categorical).to(device),
            torch.from_numpy(arrays.labels).to(device),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def fit(
    config: TrainConfig,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    spec: DatasetSpec,
    schema: FeatureSchema,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> FitResult:
    """Train on `train`, stop early on `valid`'s loss, return the best epoch's model.

    Preprocessing and label classes are learned on `train` only. `on_epoch` runs after
    every epoch; whatever it raises (``optuna.TrialPruned``) propagates untouched.

    Args:
        device: None picks CUDA when available, else CPU.
        threads: torch intra-op threads during the fit (restored after); None uses
            `DEFAULT_THREADS`.

    Raises:
        ConfigError: empty frames, a valid class unseen in train, or a diverging loss
            before any finite validation loss.
    """
    _require_rows(train, "train")
    _require_rows(valid, "valid")
    started = time.perf_counter()
    target = _device(device)
    labels = LabelEncoding.fit(train[spec.label], spec.task)
    preprocessor = Preprocessor.fit(train, schema)
    train_data = _Tensors.of(_arrays(preprocessor, labels, train, spec), target)
    valid_data = _Tensors.of(_arrays(preprocessor, labels, valid, spec), target)

    history: list[EpochRecord] = []
    best_loss, best_epoch = math.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early = False
    with _training_context(threads, target):
        net, optimizer, generators = _setup(config, preprocessor, labels, target)
        for epoch in range(1, config.max_epochs + 1):
            train_loss = _train_epoch(net, optimizer, train_data, config.batch_size, generators)
            valid_loss, valid_auc = _validate(net, valid_data)
            record = EpochRecord(epoch, train_loss, valid_loss, valid_auc)
            history.append(record)
            logger.debug("epoch %d: %s", epoch, record)
            if valid_loss < best_loss:
                best_loss, best_epoch = valid_loss, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if on_epoch is not None:
                on_epoch(record)
            if not math.isfinite(train_loss):
                stopped_early = True
                break
            if epoch - best_epoch >= config.patience:
                stopped_early = epoch < config.max_epochs
                break
    if best_state is None:
        raise ConfigError(
            f"training diverged: no finite validation loss in {len(history)} epochs "
            f"(learning_rate={config.learning_rate}); try a smaller learning rate"
        )
    net.load_state_dict(best_state)
    model = _package(net, preprocessor, labels, config, spec)
    seconds = time.perf_counter() - started
    logger.info(
        "fit %s: best epoch %d of %d, valid loss %.5f, auc %.4f, %.1fs",
        spec.name,
        best_epoch,
        len(history),
        best_loss,
        history[best_epoch - 1].valid_auc,
        seconds,
    )
    return FitResult(model, tuple(history), best_epoch, best_loss, stopped_early, seconds)


def refit(
    config: TrainConfig,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    schema: FeatureSchema,
    epochs: int,
    *,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> TabularModel:
    """Train the final model on all of `frame` (train + valid) for a fixed epoch count.

    Early stopping has no data left to watch here, so the count comes from `fit`'s
    `best_epoch`; preprocessing is relearned on the whole frame.

    Raises:
        ConfigError: an empty frame, `epochs` < 1, or a loss that is not finite.
    """
    _require_rows(frame, "refit")
    if epochs < 1:
        raise ConfigError(f"refit needs at least one epoch, got {epochs}")
    target = _device(device)
    labels = LabelEncoding.fit(frame[spec.label], spec.task)
    preprocessor = Preprocessor.fit(frame, schema)
    data = _Tensors.of(_arrays(preprocessor, labels, frame, spec), target)
    with _training_context(threads, target):
        net, optimizer, generators = _setup(config, preprocessor, labels, target)
        for epoch in range(1, epochs + 1):
            loss = _train_epoch(net, optimizer, data, config.batch_size, generators)
            logger.debug("refit epoch %d: train loss %.5f", epoch, loss)
            if not math.isfinite(loss):
                raise ConfigError(
                    f"refit diverged at epoch {epoch} (learning_rate={config.learning_rate})"
                )
    return _package(net, preprocessor, labels, config, spec)


@dataclass(frozen=True)
class _Generators:
    shuffle: torch.Generator
    dropout: torch.Generator


def _setup(
    config: TrainConfig, preprocessor: Preprocessor, labels: LabelEncoding, device: torch.device
) -> tuple[TabularNet, torch.optim.Optimizer, _Generators]:
    shuffle = torch.Generator().manual_seed(config.seed)
    net = TabularNet(
        NetSpec.build(config, preprocessor, labels.n_classes),
        preprocessor.means,
        preprocessor.stds,
        preprocessor.log_scaled,
    )
    net.reset_parameters(shuffle)
    net.to(device)
    dropout = shuffle if device.type == "cpu" else torch.Generator(device=device)
    if device.type != "cpu":
        dropout.manual_seed(config.seed)
    net.set_dropout_generator(dropout)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, foreach=True
    )
    return net, optimizer, _Generators(shuffle, dropout)


def _train_epoch(
    net: TabularNet,
    optimizer: torch.optim.Optimizer,
    data: _Tensors,
    batch_size: int,
    generators: _Generators,
) -> float:
    """One pass in a fresh random order; returns the mean training loss per row."""
    net.train()
    rows = len(data)
    order = torch.randperm(rows, generator=generators.shuffle).to(data.labels.device)
    numeric, categorical, labels = data.numeric[order], data.categorical[order], data.labels[order]
    total = torch.zeros((), device=data.labels.device)
    for start in range(0, rows, batch_size):
        stop = min(start + batch_size, rows)
        logits = net(numeric[start:stop], categorical[start:stop])
        loss = F.cross_entropy(logits, labels[start:stop])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        total += loss.detach() * (stop - start)
    return float(total) / rows


def _validate(net: TabularNet, data: _Tensors) -> tuple[float, float]:
    """Mean cross-entropy and ROC AUC on validation rows (dropout off)."""
    net.eval()
    with torch.inference_mode():
        logits = torch.cat(
            [
                net(
                    data.numeric[s : s + _EVAL_CHUNK_ROWS],
                    data.categorical[s : s + _EVAL_CHUNK_ROWS],
                )
                for s in range(0, len(data), _EVAL_CHUNK_ROWS)
            ]
        )
        loss = float(F.cross_entropy(logits, data.labels))
        proba = torch.softmax(logits, dim=1).cpu().numpy()
    return loss, roc_auc(data.labels.cpu().numpy(), proba)


def _package(
    net: TabularNet,
    preprocessor: Preprocessor,
    labels: LabelEncoding,
    config: TrainConfig,
    spec: DatasetSpec,
) -> TabularModel:
    """A CPU model in eval mode with no generator attached: ready to save or serve."""
    net.set_dropout_generator(None)
    net.to("cpu")
    return TabularModel(net, preprocessor, labels, config, DatasetRoles.from_spec(spec))


def _arrays(
    preprocessor: Preprocessor, labels: LabelEncoding, frame: pd.DataFrame, spec: DatasetSpec
) -> TabularArrays:
    if spec.label not in frame.columns:
        raise ConfigError(f"dataset {spec.name!r}: label column {spec.label!r} is missing")
    return preprocessor.transform(frame).with_labels(labels.encode(frame[spec.label]))


def _require_rows(frame: pd.DataFrame, name: str) -> None:
    if frame.empty:
        raise ConfigError(f"the {name} frame has no rows")


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def _training_context(threads: int | None, device: torch.device) -> Iterator[None]:
    """Bounded intra-op threads (and, on CUDA, deterministic kernels) for one fit.

    Both settings are process-wide in torch; they are put back so a fit leaves the
    process as it found it. The CPU kernels used here are deterministic already (same
    bits with 1 or 2 threads), and switching torch's deterministic mode on imports its
    compiler stack (about 2 s), so only CUDA fits ask for it. Some CUDA kernels have no
    deterministic variant: torch warns instead of failing (`warn_only`), so GPU fits are
    reproducible on a best-effort basis.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads if threads is not None else DEFAULT_THREADS))
    if device.type != "cuda":
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)
        return
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
