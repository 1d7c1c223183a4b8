"""The declared layers hold: `lint-imports` (pyproject's `[tool.importlinter]` contract)
passes, and every module of `mlops/` has its place in the contract, so a new one cannot
slip past it. `make lint` runs the same check; this test keeps it in `make test` (CI)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_import_layers_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_module_of_mlops_has_a_layer() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    declared = {
        name.strip()
        for contract in config["contracts"]
        for layer in contract.get("layers", [])
        for name in layer.replace("|", ":").split(":")
    }
    modules = {
        f"mlops.{path.stem if path.is_file() else path.name}"
        for path in (REPO / "mlops").iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py") or (path / "__init__.py").is_file()
    }
    assert modules - declared == set()


def test_the_longest_first_modules_exist() -> None:
    """`tests/conftest.py` starts these first; a renamed module would silently go last."""
    from tests.conftest import LONGEST_FIRST

    missing = [name for name in LONGEST_FIRST if not (REPO / "tests" / name).is_file()]
    assert missing == []
