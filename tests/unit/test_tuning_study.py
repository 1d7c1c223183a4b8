"""Study mechanics on SQLite in one process: pruning, budget, timeout, failures, summary."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import optuna
import pytest
from optuna.trial import TrialState

from mlops.errors import SourceError
from mlops.settings import Settings
from mlops.tuning import (
    NoCompleteTrial,
    TuningData,
    best_trial_summary,
    open_study,
    run_trials,
)
from tests.unit.tuning_support import (
    SlowFit,
    failing_fit,
    toy_fit,
    tuning_settings,
    write_tuning_data,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TuningData:
    return write_tuning_data(tmp_path_factory.mktemp("tuning-data"), rows=2_000)


def _trials(study: optuna.Study, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(state,))


def test_real_training_trials_are_pruned_early(data: TuningData, settings: Settings) -> None:
    settings = tuning_settings(
        settings, n_trials=8, max_epochs=6, patience=6, n_startup_trials=2, n_warmup_steps=1
    )
    run_trials("prune-real", None, data, settings)
    study = open_study("prune-real", settings)

    pruned = _trials(study, TrialState.PRUNED)
    complete = _trials(study, TrialState.COMPLETE)
    assert pruned, "the median pruner should stop some of 8 trials"
    assert complete
    for trial in pruned:
        epochs = len(trial.intermediate_values)
        assert trial.user_attrs["epochs_run"] == epochs == len(trial.user_attrs["history"])
        assert epochs < 6, "a pruned trial stops before its epoch budget"
    assert max(len(t.intermediate_values) for t in pruned) < max(
        t.user_attrs["epochs_run"] for t in complete
    )


def test_a_bad_curve_is_pruned_at_the_first_epoch_allowed(
    data: TuningData, settings: Settings
) -> None:
    settings = tuning_settings(
        settings, n_trials=12, max_epochs=5, n_startup_trials=3, n_warmup_steps=2
    )
    run_trials("prune-toy", None, data, settings, fit=toy_fit)
    study = open_study("prune-toy", settings)

    pruned = _trials(study, TrialState.PRUNED)
    assert pruned
    for trial in pruned:
        step, value = max(trial.intermediate_values.items())
        assert step == 2, "toy curves never cross: a bad one is pruned at the first allowed epoch"
        earlier = [  # the median pruner compares with complete trials only
            t.intermediate_values[step]
            for t in _trials(study, TrialState.COMPLETE)
            if t.number < trial.number
        ]
        assert len(earlier) >= 3 and value > median(earlier)
        assert trial.user_attrs["epochs_run"] == 2


def test_the_budget_is_shared_by_every_call_on_the_study(
    data: TuningData, settings: Settings
) -> None:
    settings = tuning_settings(settings, n_trials=5, max_epochs=2)
    assert run_trials("budget", 3, data, settings, fit=toy_fit) == [0, 1, 2]
    assert run_trials("budget", None, data, settings, fit=toy_fit) == [3, 4]
    assert run_trials("budget", None, data, settings, fit=toy_fit) == []
    assert len(open_study("budget", settings).trials) == 5


def test_the_timeout_ends_a_worker_before_its_budget(data: TuningData, settings: Settings) -> None:
    settings = tuning_settings(settings, n_trials=100, max_epochs=4, timeout_s=0.6)
    numbers = run_trials("timeout", None, data, settings, fit=SlowFit(0.05))
    assert 1 <= len(numbers) < 100


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    data: TuningData, settings: Settings
) -> None:
    settings = tuning_settings(settings, n_trials=8, max_epochs=3)
    run_trials("failures", None, data, settings, fit=failing_fit)
    study = open_study("failures", settings)
    failed = _trials(study, TrialState.FAIL)
    assert failed and len(study.trials) == 8
    assert all("diverged" in t.user_attrs["error"] for t in failed)
    summary = best_trial_summary(study)
    assert summary.n_failed == len(failed)
    assert summary.n_complete + summary.n_pruned + summary.n_failed == 8
    assert summary.best_params.width <= 64


def test_a_study_without_complete_trials_says_why(data: TuningData, settings: Settings) -> None:
    settings = tuning_settings(settings, n_trials=2, max_epochs=2)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory")

    run_trials("broken", None, data, settings, fit=broken)  # type: ignore[arg-type]
    with pytest.raises(NoCompleteTrial, match="out of memory"):
        best_trial_summary(open_study("broken", settings))


def test_the_summary_ranks_trials_and_rebuilds_the_best_config(
    data: TuningData, settings: Settings
) -> None:
    settings = tuning_settings(settings, n_trials=14, max_epochs=4, n_startup_trials=3)
    run_trials("summary", None, data, settings, fit=toy_fit)
    summary = best_trial_summary(open_study("summary", settings))

    assert summary.direction == "minimize"
    assert summary.n_complete + summary.n_pruned == 14
    assert len(summary.leaderboard) == 10
    complete = [row for row in summary.leaderboard if row.state == "complete"]
    assert [r.value for r in complete] == sorted(r.value for r in complete if r.value)
    assert summary.leaderboard[0].number == summary.best_trial_number
    assert summary.best_value == complete[0].value
    assert summary.best_params.max_epochs == 4
    assert summary.best_epoch == 4 and summary.best_valid_auc is not None
    assert all(row.duration_s is not None and row.duration_s >= 0 for row in summary.leaderboard)


def test_a_rerun_with_the_same_seed_finds_the_same_best_trial(
    data: TuningData, tmp_path: Path
) -> None:
    def study_in(home: Path) -> optuna.Study:
        settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
        settings = tuning_settings(settings, n_trials=5, max_epochs=3, sampler_seed=11)
        run_trials("repro", None, data, settings)
        return open_study("repro", settings)

    first, second = study_in(tmp_path / "a"), study_in(tmp_path / "b")
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_tuning_data_refuses_a_changed_file(data: TuningData, tmp_path: Path) -> None:
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(Path(data.uri).read_bytes() + b"\0")
    with pytest.raises(SourceError, match="changed"):
        data.model_copy(update={"uri": str(copy)}).load()


def test_tuning_data_keeps_valid_after_train_and_drops_the_holdout(data: TuningData) -> None:
    train, valid = data.model_copy(update={"uri": Path(data.uri).as_uri()}).load()
    stamp = data.spec.timestamp
    assert train[stamp].max() < valid[stamp].min()
    assert len(train) + len(valid) == pytest.approx(0.8 * 2_000, abs=5)
