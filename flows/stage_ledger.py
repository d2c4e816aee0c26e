"""Which stages of a workspace are complete, and with which inputs.

After each stage the flow records a fingerprint of what the stage read (content hashes of its
input paths, the policy hash and its parameters) and the content hashes of what it wrote. A later
run skips a stage whose fingerprint is unchanged and whose outputs are still exactly as written:
so a re-run after a crash resumes after the last completed stage, and a re-run with unchanged
inputs does no work. Only hashes, paths and parameters (never data) are stored.

Each role keeps its own ledger in a zone it writes: the processing stages (and the synthetic
region) in ``.state/stages.json``, which only data processors may read, and the analyses in the
researchers' ``research/stages.json``. A researcher's run then never needs a processors' zone,
and a processor's never writes where researchers work; one account acting in both roles (the
DEMO) uses both files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from ig_policies.workspace import Workspace, content_hash, make_zone_folder, write_json


def _hash_paths(paths: Iterable[Path], root: Path) -> dict[str, str]:
    """Content hash of each path ("missing" if absent), keyed by its path relative to the workspace.

    Relative keys keep a copied or moved workspace's ledger valid.
    """
    hashes = {}
    for p in sorted(set(map(Path, paths))):
        key = p.resolve().relative_to(root).as_posix() if p.resolve().is_relative_to(root) else str(p)
        hashes[key] = content_hash(p) if p.exists() else "missing"
    return hashes


@dataclass(frozen=True)
class StagePlan:
    """What a stage is about to do: its fingerprint and whether the last run already did it."""

    stage: str
    fingerprint: str
    up_to_date: bool


#: The zone of each role's ledger (see the module docstring).
LEDGER_ZONES: dict[str, str] = {"data_processor": "state", "researcher": "research"}
LEDGER_FILE = "stages.json"


def ledger_role(stage: str) -> str:
    """The role whose ledger records ``stage``: the analyses are researchers' work (as in
    ``flows.stages.stage_role``), everything else data processors'."""
    return "researcher" if stage.startswith("analysis:") else "data_processor"


class StageLedger:
    def __init__(self, workspace: Workspace):
        self.root = workspace.root.resolve()
        self.paths = {role: workspace.zone(zone) / LEDGER_FILE for role, zone in LEDGER_ZONES.items()}

    @property
    def path(self) -> Path:
        """The processing stages' ledger (the one a crashed pipeline run resumes from)."""
        return self.paths["data_processor"]

    def path_for(self, stage: str) -> Path:
        return self.paths[ledger_role(stage)]

    def _read_file(self, path: Path, missing_ok: bool = False) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except PermissionError:
            if missing_ok:
                return {}  # another role's ledger: this account has no stages there
            raise
        except json.JSONDecodeError:
            return {}  # a damaged ledger only costs a re-run, never a wrong skip

    def _read(self, stage: str | None = None) -> dict[str, Any]:
        if stage is not None:
            return self._read_file(self.path_for(stage))
        merged: dict[str, Any] = {}
        for path in self.paths.values():
            merged.update(self._read_file(path, missing_ok=True))
        return merged

    def fingerprint(self, stage: str, inputs: Iterable[Path], params: Mapping[str, Any]) -> str:
        doc = {"stage": stage, "inputs": _hash_paths(inputs, self.root), "params": dict(params)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    def plan(self, stage: str, inputs: Iterable[Path], params: Mapping[str, Any]) -> StagePlan:
        fp = self.fingerprint(stage, inputs, params)
        record = self._read(stage).get(stage)
        up_to_date = bool(
            record
            and record.get("fingerprint") == fp
            and record.get("outputs")
            and all(
                (self.root / p).exists() and content_hash(self.root / p) == h
                for p, h in record["outputs"].items()
            )
        )
        return StagePlan(stage, fp, up_to_date)

    def complete(
        self, plan: StagePlan, outputs: Iterable[Path], summary: Mapping[str, Any] | None = None
    ) -> None:
        existing = [Path(p) for p in outputs if Path(p).exists()]
        path = self.path_for(plan.stage)
        make_zone_folder(path.parent)
        with FileLock(str(path) + ".lock"):
            ledger = self._read(plan.stage)
            ledger[plan.stage] = {
                "fingerprint": plan.fingerprint,
                "outputs": _hash_paths(existing, self.root),
                "summary": dict(summary or {}),
                "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "pid": os.getpid(),
            }
            write_json(path, ledger)

    def completed_stages(self) -> list[str]:
        """Every stage recorded in the ledgers this account may read."""
        return list(self._read())

    def summary(self, stage: str) -> dict[str, Any]:
        return dict(self._read(stage).get(stage, {}).get("summary", {}))
