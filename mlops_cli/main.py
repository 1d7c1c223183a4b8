"""The `mlops` command: the human entry point to the pipeline.

Heavy imports (Prefect, Great Expectations, Feast) happen inside the commands that
need them, so `mlops --help` answers at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devstack.localstack import localstack_app
from mlops.errors import PipelineError
from mlops.settings import RowPolicy, Settings, get_settings
from mlops_cli.canary import canary_app
from scenarios.cli import scenario_app
from serving.cli import serve_app

if TYPE_CHECKING:
    from flows.training import TrainingPipelineResult
    from mlops.contracts import QuantizationResult

DEFAULT_SPEC = Path("datasets/card_fraud.yaml")

app = typer.Typer(help="A self-healing model pipeline on Prefect 3.", no_args_is_help=True)
data_app = typer.Typer(help="Generate, profile and replay data batches.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Run the training pipeline.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(canary_app, name="canary")
app.add_typer(localstack_app, name="stack")
app.add_typer(scenario_app, name="scenario")
app.add_typer(serve_app)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _use_local_prefect(settings: Settings) -> None:
    """Keep Prefect's own state under the state directory unless the user chose otherwise.

    Prefect reads PREFECT_* at import, so this runs before the first Prefect import.
    """
    if "prefect" in sys.modules:
        return
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(settings.prefect_home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@data_app.command("generate")
def data_generate(
    scenario: Annotated[
        str, typer.Option(help="baseline | covariate-shift | concept-shift | bad-batch")
    ],
    rows: Annotated[int, typer.Option(min=1, help="Number of transactions.")],
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    start: Annotated[
        datetime,
        typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="First timestamp (UTC)."),
    ] = datetime(2026, 1, 1),
    days: Annotated[float, typer.Option(min=0.01, help="Length of the period covered.")] = 7.0,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default: derived from scenario and start).")
    ] = None,
    defect: Annotated[
        list[str] | None,
        typer.Option(help="With bad-batch: inject only these defects (repeatable)."),
    ] = None,
) -> None:
    """Write a seeded synthetic card-fraud batch for a named scenario."""
    from mlops.synthetic import Defect, Scenario, generate, write_batch

    try:
        chosen = Scenario(scenario)
        defects = [Defect(d) for d in defect] if defect else None
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    frame = generate(chosen, rows, start.replace(tzinfo=UTC), days=days, seed=seed, defects=defects)
    path = write_batch(frame, out)
    typer.echo(f"wrote {len(frame):,} rows ({chosen.value}) to {path}")


@pipeline_app.command("run")
def pipeline_run(
    data: Annotated[Path | None, typer.Option(help="Raw batch (parquet or CSV).")] = None,
    dataset_config: Annotated[Path, typer.Option(help="Dataset spec (YAML).")] = DEFAULT_SPEC,
    policy: Annotated[
        RowPolicy | None, typer.Option(help="Override the validation policy.")
    ] = None,
    train: Annotated[
        bool, typer.Option("--train/--features-only", help="Stop after the training set.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the training pipeline once; exits non-zero with the reason if a stage refuses."""
    # Libraries (Feast's materialize) print progress to stdout; with --json, stdout
    # carries the JSON object alone and their chatter goes to stderr.
    chatter = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with chatter:
            result = _run_pipeline(data, dataset_config, policy, train=train)
    except PipelineError as exc:
        if as_json:
            typer.echo(json.dumps({"status": "rejected", "reason": str(exc)}, indent=2))
        raise _fail(f"pipeline stopped: {exc}") from exc
    typer.echo(json.dumps(_summary(result), indent=2) if as_json else _describe(result))


def _run_pipeline(
    data: Path | None, dataset_config: Path, policy: RowPolicy | None, *, train: bool = True
) -> TrainingPipelineResult:
    """Run the flow in this process (Prefect's ephemeral server unless PREFECT_API_URL).

    The spec and the batch are checked first: a typo is answered at once, before a
    Prefect server, torch or MLflow start.
    """
    from mlops.dataset_spec import load_spec
    from mlops.errors import ConfigError

    load_spec(dataset_config)
    if data is not None and not data.exists():
        raise ConfigError(f"batch not found: {data}")
    settings = get_settings()
    _use_local_prefect(settings)
    from flows.training import TrainingPipelineParams, run_training_pipeline

    params = TrainingPipelineParams(
        data=str(data) if data else None,
        dataset_config=str(dataset_config),
        policy=policy,
        train=train,
    )
    return run_training_pipeline(params)


def _summary(result: TrainingPipelineResult) -> dict[str, object]:
    """The JSON object scripts and CI read."""
    model = result.model
    training = result.training
    return {
        "status": result.status.value,
        "reason": result.reason,
        "model": None
        if model is None
        else {
            "name": model.name,
            "version": model.version,
            "aliases": list(model.aliases),
            "model_uri": model.model_uri,
            "tracking_uri": get_settings().resolved_tracking_uri,
        },
        "metrics": None
        if training is None
        else {"holdout": training.metrics, "baseline": training.baseline_metrics},
        "quantization": _quantization_summary(result.quantization),
        "mlflow_run_id": None if training is None else training.mlflow_run_id,
        "flow_run_id": None if result.flow_run_id is None else str(result.flow_run_id),
        "batch": result.batch.model_dump(mode="json"),
        "validation": {
            "verdict": result.validation.verdict.value,
            "bad_rows": result.validation.bad_rows,
            "report_html": result.validation.report_html,
        },
        "training_set": result.training_set.model_dump(mode="json"),
    }


def _quantization_summary(result: QuantizationResult | None) -> dict[str, object] | None:
    """The chosen variant, its bytes against fp32, its retention, and every variant tried."""
    if result is None:
        return None
    return {
        "scheme": result.scheme,
        "bytes": result.bytes,
        "fp32_bytes": result.fp32_bytes,
        "retention": result.retention,
        "policy": result.policy,
        "threshold": result.threshold,
        "variants": [
            {
                "scheme": v.scheme,
                "passed": v.passed,
                "bytes": v.bytes,
                "bytes_ratio": round(v.bytes_ratio, 4),
                "retention": v.retention,
                "metrics": v.metrics,
                "agreement": v.agreement,
                "latency_1_ratio": round(v.latency_1_ratio, 3),
                "latency_256_ratio": round(v.latency_256_ratio, 3),
            }
            for v in result.variants
        ],
    }


def _describe(result: TrainingPipelineResult) -> str:
    v, f, t = result.validation, result.features, result.training_set
    lines = [
        f"training pipeline finished: {result.status.value}",
        f"  batch          {result.batch.sha256[:12]}  {result.batch.rows:,} rows  "
        f"{result.batch.start:%Y-%m-%d} .. {result.batch.end:%Y-%m-%d}",
        f"  validation     {v.verdict.value}: "
        f"{len(v.outcomes) - len(v.failed)}/{len(v.outcomes)} expectations, "
        f"{v.bad_rows:,} rows quarantined, {v.duration_s:.2f} s",
        f"  features       {f.feature_service}: {len(f.features)} features, "
        f"{f.rows_written:,} rows online ({f.online_store}), {f.duration_s:.2f} s",
        f"  training set   {t.rows:,} rows, labels {t.label_counts}",
    ]
    if result.training is not None:
        m, b = result.training.metrics, result.training.baseline_metrics
        lines.append(
            f"  model          holdout ROC AUC {m['roc_auc']:.4f} (logistic baseline "
            f"{b['roc_auc']:.4f}), log loss {m['log_loss']:.4f}, ECE {m['ece']:.4f}"
        )
        lines.append(f"  MLflow run     {result.training.mlflow_run_id}")
    if result.quantization is not None:
        q = result.quantization
        tried = ", ".join(
            f"{v.scheme} {v.bytes_ratio:.0%}{'' if v.passed else ' (failed gate)'}"
            for v in q.variants
        )
        lines.append(
            f"  quantization   {q.scheme} chosen: {q.bytes:,} of {q.fp32_bytes:,} fp32 bytes, "
            f"ROC AUC retention {q.retention:.4f}  [{tried}]"
        )
    if result.model is not None:
        lines.append(
            f"  registered     {result.model.name} v{result.model.version} "
            f"{list(result.model.aliases)}  ({result.model.model_uri})"
        )
    elif result.gate is not None:
        lines.append(f"  not promoted   {result.reason}")
    return "\n".join(lines)


@data_app.command("profile")
def data_profile(
    data: Annotated[
        Path, typer.Option(help="The reference batch the data contract is learned from.")
    ],
    dataset_config: Annotated[Path, typer.Option(help="Dataset spec (YAML).")] = DEFAULT_SPEC,
) -> None:
    """Learn (or re-learn) the reference profile that validation suites are built from."""
    from mlops.dataset_spec import load_spec
    from mlops.sources import ingest_batch
    from mlops.validation import learn_profile, save_profile

    settings = get_settings()
    try:
        spec = load_spec(dataset_config).with_source_path(data.resolve())
        frame, ref = ingest_batch(spec, settings)
        path = save_profile(learn_profile(spec, frame, ref.sha256), settings)
    except PipelineError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"reference profile for {spec.name!r} learned from {ref.sha256[:12]}: {path}")


@data_app.command("replay")
def data_replay(
    quarantine_dir: Annotated[Path, typer.Argument(help="A folder under .mlops/quarantine/.")],
    check_only: Annotated[
        bool, typer.Option("--check", help="Only re-validate; do not run the pipeline.")
    ] = False,
) -> None:
    """Re-validate a quarantined batch after it was fixed; if it passes, run the pipeline on it."""
    from mlops.validation import load_manifest, mark_released, replay_quarantined

    settings = get_settings()
    try:
        manifest = load_manifest(quarantine_dir)
        if check_only:
            report = replay_quarantined(quarantine_dir, settings)
            if not report.passed:
                raise _fail(f"still refused: {report.summary()}")
            typer.echo(f"{report.summary()}\nreleased {quarantine_dir}")
            return
    except PipelineError as exc:
        raise _fail(str(exc)) from exc
    try:
        result = _run_pipeline(Path(manifest.data_file), quarantine_dir / "spec.yaml", None)
    except PipelineError as exc:
        raise _fail(f"still refused: {exc}") from exc
    mark_released(quarantine_dir, result.validation)
    typer.echo(_describe(result))
    typer.echo(f"released {quarantine_dir}")


@app.command("demo")
def demo(
    rows: Annotated[int, typer.Option(min=1000, help="Rows in the baseline batch.")] = 20_000,
) -> None:
    """Generate a baseline batch, run the pipeline on it, then show a bad batch being refused."""
    from mlops.synthetic import Scenario, generate, write_batch

    settings = get_settings()
    demo_dir = settings.home / "demo"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    typer.secho("1/3  generating a synthetic card-fraud baseline", bold=True)
    baseline = write_batch(
        generate(Scenario.BASELINE, rows, start, days=14), demo_dir / "baseline.parquet"
    )
    typer.secho(
        "2/3  running the training pipeline on it: validate, features, tune "
        f"({settings.tuning.n_trials} trials on {settings.tuning.workers} workers), "
        "evaluate, gate, register",
        bold=True,
    )
    try:
        result = _run_pipeline(baseline, DEFAULT_SPEC, None)
    except PipelineError as exc:
        raise _fail(f"the demo's baseline was refused: {exc}") from exc
    typer.echo(_describe(result))
    typer.secho(
        "3/3  a bad batch (nulls, out-of-range, wrong dtype, missing column, duplicates)", bold=True
    )
    bad = write_batch(
        generate(Scenario.BAD_BATCH, rows // 4, datetime(2026, 1, 15, tzinfo=UTC), days=3),
        demo_dir / "bad_batch.parquet",
    )
    stores_before = _files_under(settings.feast_dir, settings.training_sets_dir)
    try:
        _run_pipeline(bad, DEFAULT_SPEC, None)
    except PipelineError as exc:
        typer.echo(f"pipeline stopped: {exc}")
        if _files_under(settings.feast_dir, settings.training_sets_dir) != stores_before:
            raise _fail("the refused batch changed the feature store") from None
        typer.secho(
            "     refused as expected: quarantined; feature store and training sets unchanged",
            fg=typer.colors.GREEN,
        )
    else:
        raise _fail("the bad batch was accepted: the data contract is too lax")
    typer.echo(
        "\nInspect the runs:  make prefect-ui  (http://127.0.0.1:4200)\n"
        "Inspect models:    make mlflow-ui   (http://127.0.0.1:5000)\n"
        "Inspect features:  make feast-ui    (http://127.0.0.1:8888)\n"
        f"Quarantine:        {settings.quarantine_dir}"
    )


def _files_under(*roots: Path) -> dict[str, int]:
    """Path -> size of every file of the stores (enough to see that nothing was written)."""
    return {str(p): p.stat().st_size for root in roots for p in root.rglob("*") if p.is_file()}


if __name__ == "__main__":
    app()
