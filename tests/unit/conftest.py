"""Fixtures shared by unit-test modules: the tiny pseudonymised workspace (one Spark stage run).

Pseudonymising even three rows costs about 20 s of Spark planning and broadcast jobs, so the
pseudonymisation tests and the Bloom-filter stage tests read one run. Tests that change the
workspace (key rotation) work on a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from ig_policies.workspace import Workspace


@dataclass(frozen=True)
class PseudonymisedRun:
    workspace: Workspace
    engine: Any
    result: Any
    tables: dict[str, pd.DataFrame]


@pytest.fixture(scope="session")
def pseudonymised_run(spark, tmp_path_factory) -> PseudonymisedRun:
    """``tests.unit.test_pseudonymise.make_workspace`` pseudonymised once; read it, never change it."""
    from linkage.identifiable.pseudonymise import pseudonymise_extracts
    from tests.unit.test_pseudonymise import PROCESSOR, SECRET, engine_for, make_workspace

    ws = make_workspace(tmp_path_factory.mktemp("pseudo") / "ws")
    engine = engine_for(ws)
    result = pseudonymise_extracts(ws, engine, PROCESSOR, spark, master_secret=SECRET)
    tables = {name: pd.read_parquet(path) for name, path in result.outputs.items()}
    return PseudonymisedRun(ws, engine, result, tables)
