"""The shared vocabulary: one spelling of measures, conditions and age bands, kept in step everywhere."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import vocabulary
from analysis.area_data import AREA_CONDITIONS, QOF_GROUPS
from analysis.research_dataset import age_band
from ig_policies.policy import Analysis
from linkage.quality import _age_band as quality_age_band
from synthetic import config as synth_config
from synthetic.england import ENGLAND_REGISTERS

ANALYSIS_DIR = Path(__file__).resolve().parents[2] / "analysis"


def test_every_analysis_the_policy_can_permit_has_a_display_name() -> None:
    assert set(vocabulary.ANALYSIS_TITLES) == {a.value for a in Analysis}


def test_age_bands_are_contiguous_and_their_labels_say_their_limits() -> None:
    bands = vocabulary.AGE_BANDS
    assert bands[0].low == 16
    for band, following in zip(bands, bands[1:], strict=False):
        assert following.low == band.high + 1
    for band in bands:
        numbers = [int(n) for n in re.findall(r"\d+", band.label)]
        assert numbers == ([band.low] if band.label.endswith("+") else [band.low, band.high])
    assert vocabulary.WORKING_AGE_BANDS == ("16-24", "25-34", "35-49", "50-64")
    assert (*vocabulary.WORKING_AGE_BANDS, "65+") == vocabulary.CENSUS_AGE_BANDS


def test_research_dataset_and_linkage_report_band_every_age_alike() -> None:
    ages = pd.Series(np.arange(0, 110), dtype=float)
    banded = age_band(ages)
    assert banded.tolist() == [quality_age_band(a) for a in ages]
    assert quality_age_band(15) == "unknown" and quality_age_band(16) == "16-24"
    assert banded[64] == "50-64" and banded[65] == "65+"


def test_generator_plants_the_measures_and_conditions_the_analyses_read() -> None:
    assert synth_config.MEASURES == vocabulary.MEASURES
    assert synth_config.CONDITIONS == vocabulary.CONDITIONS
    assert synth_config.AGE_BANDS == vocabulary.WORKING_AGE_BANDS
    # the QOF loader reads the project's conditions, and the five more registers of the area model
    assert tuple(QOF_GROUPS.values()) == AREA_CONDITIONS
    assert AREA_CONDITIONS[: len(vocabulary.CONDITIONS)] == vocabulary.CONDITIONS
    assert tuple(ENGLAND_REGISTERS) == AREA_CONDITIONS  # the synthetic England plants every one
    assert set(vocabulary.MEASURE_LABELS) == set(vocabulary.MEASURES)


def test_vocabulary_imports_nothing_heavy(tmp_path: Path) -> None:
    script = tmp_path / "imports.py"
    script.write_text(
        "import sys\nimport analysis.vocabulary\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'pydantic', 'ig_policies') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ANALYSIS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The analysis modules ``path`` imports when it is loaded (not inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
            )
    return found


def test_analysis_modules_import_one_another_without_cycles() -> None:
    files = {_module_name(p): p for p in ANALYSIS_DIR.rglob("*.py")}
    graph = {name: _module_level_imports(path, set(files)) - {name} for name, path in files.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "analysis.equity.stage" in graph and "analysis.stage" in graph["analysis.equity.stage"]
