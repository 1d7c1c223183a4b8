"""How fast the `mlops` command answers a person, beside the stack's own commands.

Times (median of `--repeats` fresh processes) `mlops --help`, a refused dataset spec and
a missing batch, next to `prefect --help` and `mlflow --help`, the commands the same
person runs on this stack. `mlops` imports torch, MLflow and Prefect only in the
commands that run them (tests/unit/test_cli_startup.py keeps it so).

Run from the repository root: `.venv/bin/python benchmarks/cli_startup.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _median_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "bad.yaml"
        spec.write_text("name: x\nentity: 3\n")
        cases = {
            "mlops --help": [str(BIN / "mlops"), "--help"],
            "mlops pipeline run (bad spec)": [
                str(BIN / "mlops"),
                "pipeline",
                "run",
                "--dataset-config",
                str(spec),
            ],
            "mlops pipeline run (no batch)": [
                str(BIN / "mlops"),
                "pipeline",
                "run",
                "--data",
                str(Path(tmp) / "none.parquet"),
            ],
            "prefect --help": [str(BIN / "prefect"), "--help"],
            "mlflow --help": [str(BIN / "mlflow"), "--help"],
        }
        seconds = {name: _median_seconds(command, args.repeats) for name, command in cases.items()}
    reference = seconds["prefect --help"]
    print(f"{'command':34s} {'median s':>9s} {'vs prefect --help':>18s}")  # noqa: T201
    for name, value in seconds.items():
        print(f"{name:34s} {value:9.2f} {value / reference:17.2f}x")  # noqa: T201


if __name__ == "__main__":
    main()
