"""Retention enforcement: delete linked and analysis data once the policy's retention date arrives.

The policy engine already refuses to *use* linked data from the retention date; this stage removes
it, as the data-sharing agreement requires, and records what was removed (zone, file count and
bytes; never file contents) in the audit log. It runs under an IG officer's name and still works
after the policy has expired, because deleting data must never be blocked by an expired approval.

Like every step it commits only after its audit entry: each entry is first renamed aside into a
staging folder of its zone, and deleted only once the closing entry is written; if that entry
cannot be written, everything is renamed back and nothing is lost unrecorded. A run killed in
between leaves its staging folder, which the next start-up removes (the data was due for deletion;
the audit log shows the step as started and never finished).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ig_policies.engine import PolicyEngine
from ig_policies.policy import Role
from ig_policies.workspace import STAGING_PREFIX, staging_folder

#: Zones holding linked data or data derived row-by-row from it.
RETENTION_ZONES = ("linked", "analysis")


@dataclass(frozen=True)
class RetentionResult:
    delete_by: dt.date
    due: bool
    dry_run: bool
    deleted: tuple[Path, ...]  # top-level entries of the zones (deleted, or that would be in a dry run)
    files: int
    bytes: int


def _size(path: Path) -> tuple[int, int]:
    if path.is_file() or path.is_symlink():
        return 1, path.lstat().st_size
    files = [f for f in path.rglob("*") if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def enforce_retention(engine: PolicyEngine, actor: str, dry_run: bool = False) -> RetentionResult:
    """Delete everything in the linked and analysis zones if the retention date has arrived.

    Before the date nothing is deleted (the result says ``due=False``); ``dry_run`` lists what would
    be deleted without deleting it. Either way the run is audited.
    """
    ws = engine.workspace
    delete_by = engine.policy.retention.linked_data_delete_by
    due = engine.today() >= delete_by
    retired: list[tuple[Path, Path]] = []  # (where it was, where it waits for the audit entry)
    tag = secrets.token_hex(4)
    try:
        with engine.step(actor, Role.IG_OFFICER, "retention_enforce") as step:
            targets = sorted(
                p
                for zone in RETENTION_ZONES
                for p in ws.zone(zone).iterdir()
                if not p.name.startswith(STAGING_PREFIX)
            )
            sizes = [_size(p) for p in targets]
            files, size = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
            if due and not dry_run:
                for target in targets:
                    aside = staging_folder(target.parent, tag) / target.name
                    os.replace(target, aside)  # same zone, same filesystem: a rename
                    retired.append((target, aside))
            step.counts(entries=len(targets), files=files, bytes=size)
            step.detail(
                zones=list(RETENTION_ZONES),
                delete_by=delete_by.isoformat(),
                due=due,
                dry_run=dry_run,
                deleted=due and not dry_run,
            )
    except BaseException:
        # Not recorded as done (the work or its closing audit entry failed): nothing is deleted.
        for target, aside in reversed(retired):
            os.replace(aside, target)
        _remove_retire_folders(retired)
        raise
    # The audit log records the deletion: only now is the data removed for good.
    for _, aside in retired:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside)
        else:
            aside.unlink()
    _remove_retire_folders(retired)
    return RetentionResult(delete_by, due, dry_run, tuple(targets), files, size)


def _remove_retire_folders(retired: list[tuple[Path, Path]]) -> None:
    for folder in {aside.parent for _, aside in retired}:
        shutil.rmtree(folder, ignore_errors=True)
