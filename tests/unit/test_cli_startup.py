"""Fast feedback: `mlops --help` and a refused dataset spec import no torch, MLflow or
Prefect (benchmarks/cli_startup.py times them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "mlflow", "prefect", "great_expectations", "feast")
PROBE = f"""
import json, sys
from typer.testing import CliRunner
from mlops_cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
loaded = {{name.split(".")[0] for name in sys.modules}}
print(json.dumps({{"code": result.exit_code, "output": result.output,
                  "heavy": sorted(loaded & {set(HEAVY)!r})}}))
"""


def _invoke(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_help_imports_nothing_heavy() -> None:
    result = _invoke("--help")
    assert result["code"] == 0 and "canary" in str(result["output"])
    assert result["heavy"] == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("name: x\nentity: 3\n", "is invalid"), ("name: [", "not valid YAML")],
)
def test_a_bad_spec_is_refused_before_anything_heavy_starts(
    tmp_path: Path, spec: str, expected: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    result = _invoke("pipeline", "run", "--dataset-config", str(path))
    assert result["code"] == 1 and expected in str(result["output"])
    assert result["heavy"] == []


def test_a_missing_batch_is_refused_before_anything_heavy_starts(tmp_path: Path) -> None:
    result = _invoke("pipeline", "run", "--data", str(tmp_path / "nope.parquet"))
    assert result["code"] == 1 and "batch not found" in str(result["output"])
    assert result["heavy"] == []


@pytest.mark.parametrize("flow_module", ["flows.canary"])
def test_the_scheduled_flows_load_without_torch_or_matplotlib(flow_module: str) -> None:
    """A rollout step (every few minutes) reads the registry and the prediction log and
    loads no model: its flow run need not import torch or matplotlib when it starts.
    (The drift monitor still does, through `mlops.modeling`'s package imports.)"""
    probe = (
        f"import json, sys; import {flow_module}; "
        "loaded = {n.split('.')[0] for n in sys.modules}; "
        "print(json.dumps(sorted(loaded & {'torch', 'matplotlib'})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
