"""Which stages of a workspace are complete, and with which inputs.

After each stage the flow records a fingerprint of what the stage read (content hashes of its
input paths, the policy hash and its parameters) and the content hashes of what it wrote. A later
run skips a stage whose fingerprint is unchanged and whose outputs are still exactly as written:
so a re-run after a crash resumes after the last completed stage, and a re-run with unchanged
inputs does no work. Only hashes, paths and parameters (never data) are stored.
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


class StageLedger:
    def __init__(self, workspace: Workspace):
        self.root = workspace.root.resolve()
        self.path = self.root / ".state" / "stages.json"
        make_zone_folder(self.path.parent)
        self._lock = FileLock(str(self.path) + ".lock")

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError:
            return {}  # a damaged ledger only costs a re-run, never a wrong skip

    def fingerprint(self, stage: str, inputs: Iterable[Path], params: Mapping[str, Any]) -> str:
        doc = {"stage": stage, "inputs": _hash_paths(inputs, self.root), "params": dict(params)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    def plan(self, stage: str, inputs: Iterable[Path], params: Mapping[str, Any]) -> StagePlan:
        fp = self.fingerprint(stage, inputs, params)
        record = self._read().get(stage)
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
        with self._lock:
            ledger = self._read()
            ledger[plan.stage] = {
                "fingerprint": plan.fingerprint,
                "outputs": _hash_paths(existing, self.root),
                "summary": dict(summary or {}),
                "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "pid": os.getpid(),
            }
            write_json(self.path, ledger)

    def completed_stages(self) -> list[str]:
        return list(self._read())

    def summary(self, stage: str) -> dict[str, Any]:
        return dict(self._read().get(stage, {}).get("summary", {}))
