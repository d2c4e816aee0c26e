"""Every benchmark runs exactly as its docstring says: ``.venv/bin/python benchmarks/NAME.py``.

A script run that way has ``benchmarks/`` first on ``sys.path``, so a benchmark named like an
importable package (``benchmarks/linkage.py``) replaces that package for every import in the run:
``--help`` still works, the benchmark itself fails with a circular import. Both are checked here.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert {p.stem for p in BENCHMARKS} >= {"synth", "validation", "pseudonymise", "link", "end_to_end"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_name_shadows_no_importable_module(script: Path) -> None:
    spec = importlib.util.find_spec(script.stem)
    assert spec is None, (
        f"benchmarks/{script.name} has the name of the importable module {script.stem!r} "
        f"({spec.origin}); run as a script it would replace it. Rename the benchmark."
    )


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_docstring_says_how_to_run_it(script: Path) -> None:
    doc = script.read_text(encoding="utf-8")
    assert re.search(rf"\.venv/bin/python benchmarks/{re.escape(script.name)}\b", doc), (
        f"benchmarks/{script.name}: the docstring must show the command, "
        f"'.venv/bin/python benchmarks/{script.name} ...'"
    )


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_help_runs_from_the_repository_root(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script.name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout
