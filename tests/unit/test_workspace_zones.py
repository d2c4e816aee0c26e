"""Zones on disk: who may read each one is said by its mode (and, in a deployment, its OS group),
every writer keeps files within their zone, and dead runs leave no staging folder behind."""

from __future__ import annotations

import contextlib
import grp
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows import stages
from flows.stages import PipelineContext
from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.errors import EnvironmentProblem, InputError
from ig_policies.workspace import (
    STAGING_MODE,
    ZONE_ACCESS,
    ZONES,
    Workspace,
    ZoneGroups,
    apply_zone_permissions,
    atomic_directory,
    remove_stale_staging,
    staging_folder,
    write_text,
)

#: The zones whose files only data processors may read.
PROCESSOR_ZONES = ("landing", "quarantine", "pseudonymised", "linked")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


#: What the stages write, by zone (not the extracts a test placed in landing/ as a delivery).
STAGE_OUTPUTS = ("landing/validated", "quarantine", "pseudonymised", "linked", "reports")


def _pipeline_written(ws: Workspace, written: tuple[str, ...]) -> Iterator[Path]:
    for rel in written:
        top = ws.root / rel
        if top.exists():
            yield top
            yield from top.rglob("*")


def assert_zones_sealed(ws: Workspace, written: tuple[str, ...] = STAGE_OUTPUTS) -> None:
    """What a stage run must leave (no groups): processor zones and everything the stages wrote
    (``written``: folders relative to the root, omitting any a test filled by hand) readable by the
    owner only, nothing world-readable or group-writable, no staging folder anywhere."""
    for name in PROCESSOR_ZONES:
        assert _mode(ws.zone(name)) & 0o077 == 0, f"zone {name} is {oct(_mode(ws.zone(name)))}"
    processor_dirs = [ws.zone(n) for n in PROCESSOR_ZONES]
    for path in _pipeline_written(ws, written):
        mode = _mode(path)
        assert mode & 0o007 == 0, f"{path} is world-accessible ({oct(mode)})"
        assert mode & 0o020 == 0, f"{path} is group-writable ({oct(mode)})"
        if any(path.is_relative_to(d) for d in processor_dirs):
            assert mode & 0o077 == 0, f"{path} in a processors-only zone is {oct(mode)}"
    for path in ws.root.rglob(".staging-*"):
        raise AssertionError(f"a staging folder was left behind: {path}")
    assert _mode(ws.root) & 0o006 == 0


def test_every_zone_has_one_access_rule_and_identifiable_zones_are_processors_only() -> None:
    assert set(ZONE_ACCESS) == set(ZONES)
    for name in (*PROCESSOR_ZONES, "truth"):
        access = ZONE_ACCESS[name]
        assert access.processors_only and access.writer == "data_processor"
        assert access.alone_mode == 0o700 and access.group == "data_processor"
    assert "researcher" in ZONE_ACCESS["analysis"].readers
    assert ZONE_ACCESS["analysis"].writer == "data_processor"
    assert ZONE_ACCESS["pending"].readers == {"ig_officer"}
    assert ZONE_ACCESS["audit"].writer == "audit_writer"
    for access in ZONE_ACCESS.values():
        assert access.grouped_mode & 0o007 == 0 and access.alone_mode & 0o027 == 0
        assert access.grouped_mode & stat.S_ISGID  # files made in it inherit the zone's group


def test_a_workspace_alone_is_0700_for_identifiable_zones_and_0750_for_the_others(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    for name in ZONES:
        expected = 0o700 if name in (*PROCESSOR_ZONES, "truth", "state", "research") else 0o750
        assert _mode(ws.zone(name)) == expected, name
    (ws.pseudonymised).chmod(0o755)  # loosened by hand: opening it again restores the rule
    Workspace.open(ws.root)
    assert _mode(ws.pseudonymised) == 0o700


@contextlib.contextmanager
def _umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_writers_keep_files_within_their_folder_whatever_the_umask(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    with _umask(0):  # the worst a caller could leave
        secret = write_text(ws.linked / "deep" / "er" / "summary.json", "{}")
        shared = write_text(ws.analysis / "panel" / "notes.txt", "x")
        with atomic_directory(ws.pseudonymised / "table") as tmp:
            (tmp / "part").mkdir(parents=True)
            (tmp / "part" / "a.parquet").write_bytes(b"rows")
            (tmp / "part" / "a.parquet").chmod(0o666)
    assert _mode(secret) == 0o600
    assert _mode(ws.linked / "deep") == 0o700 and _mode(ws.linked / "deep" / "er") == 0o700
    assert _mode(shared) == 0o640 and _mode(ws.analysis / "panel") == 0o750
    assert _mode(ws.pseudonymised / "table") == 0o700
    assert _mode(ws.pseudonymised / "table" / "part") == 0o700
    assert _mode(ws.pseudonymised / "table" / "part" / "a.parquet") == 0o600
    key = write_text(ws.analysis / "key.pem", "k", mode=0o600)  # a caller may always ask for less
    assert _mode(key) == 0o600


@pytest.mark.spark
def test_spark_output_is_tightened_before_it_is_renamed_into_its_zone(spark, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    with _umask(0o027), atomic_directory(ws.pseudonymised / "people") as tmp:
        spark.range(3).write.parquet(str(tmp))
    written = [ws.pseudonymised / "people", *(ws.pseudonymised / "people").rglob("*")]
    assert len(written) > 2
    assert {oct(_mode(p)) for p in written} <= {"0o700", "0o600"}


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_dead_runs_staging_is_removed_as_a_stage_begins_and_a_live_ones_is_kept(
    tmp_path: Path, master_secret_env: str
) -> None:
    ws = Workspace.open(tmp_path / "ws")
    validated = ws.landing / "validated"
    dead, live = _dead_pid(), subprocess.Popen(["sleep", "60"])
    try:
        stale = validated / f".staging-{dead}"
        stale.mkdir(parents=True)
        (stale / "000.parquet").write_bytes(b"identifiable rows")
        stale_write = ws.linked / f".links.parquet.pid{dead}.x1y2.tmp"
        stale_write.mkdir()
        kept = validated / f".staging-{live.pid}"
        kept.mkdir()
        mine = staging_folder(validated)
        assert _mode(mine) == STAGING_MODE and mine.name == f".staging-{os.getpid()}"

        ctx = PipelineContext(ws, DEMO_POLICY, trust_store=DEMO_TRUST_STORE)
        with pytest.raises(InputError, match="no linkage to report on"):
            stages.run_link_report(ctx)  # the stage begins (policy checked), clears, then finds no input
        assert not stale.exists() and not stale_write.exists()
        assert kept.exists() and mine.exists()  # a live run's folder, and this process's own

        live.kill()
        live.wait()
        removed = remove_stale_staging(ws)
        assert removed == [kept]
        line = stages.clear_dead_runs(ws)
        assert line == ()  # nothing left to remove, nothing said
    finally:
        live.kill()
        live.wait()


def test_clearing_says_what_it_removed_in_one_line(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    (ws.quarantine / f".staging-{_dead_pid()}").mkdir()
    (lines,) = stages.clear_dead_runs(ws)
    assert lines.startswith(
        "Removed 1 staging folder(s) left by runs that are no longer alive: quarantine/.staging-"
    )


def test_a_refused_person_removes_nothing(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    stale = ws.landing / f".staging-{_dead_pid()}"
    stale.mkdir()
    ctx = PipelineContext(ws, None)
    with pytest.raises(Exception, match="No policy given"):
        stages.run_link_report(ctx)
    assert stale.exists()


def test_zone_groups_are_data_and_an_unknown_group_names_the_zone(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="auditor"):
        ZoneGroups.model_validate({"auditor": "x"})
    ws = Workspace.open(tmp_path / "ws")
    missing = f"ehl-no-such-group-{uuid.uuid4().hex[:8]}"
    with pytest.raises(EnvironmentProblem) as problem:
        apply_zone_permissions(ws, ZoneGroups(data_processor=missing))
    assert "landing" in str(problem.value) and missing in str(problem.value)
    assert "groupadd" in str(problem.value)


@pytest.fixture
def role_groups() -> Iterator[ZoneGroups]:
    """Two real OS groups (processors, researchers), removed afterwards; needs root to create them."""
    if os.geteuid() != 0:
        pytest.skip("creating OS groups needs root (groupadd); CI runs as root")
    prefix = f"ehlz{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}p", f"{prefix}r"]
    try:
        for name in names:
            subprocess.run(["groupadd", name], check=True, capture_output=True)
        yield ZoneGroups(data_processor=names[0], researcher=names[1])
    finally:
        for name in names:
            subprocess.run(["groupdel", name], check=False, capture_output=True)


def test_zones_get_their_roles_groups_and_setgid_modes(tmp_path: Path, role_groups: ZoneGroups) -> None:
    ws = Workspace.open(tmp_path / "ws", groups=role_groups)
    processors = grp.getgrnam(role_groups.data_processor).gr_gid
    researchers = grp.getgrnam(role_groups.researcher).gr_gid
    for name in PROCESSOR_ZONES:
        assert ws.zone(name).stat().st_gid == processors, name
        assert _mode(ws.zone(name)) == 0o2770, name
    assert ws.analysis.stat().st_gid == researchers and _mode(ws.analysis) == 0o2750
    # roles without a group in the deployment keep the single-account modes
    assert _mode(ws.pending) == 0o750 and _mode(ws.audit) == 0o750
    # files inherit the zone's group (setgid) and are readable by that group only
    table = write_text(ws.analysis / "panel" / "clients.csv", "a\n")
    assert table.stat().st_gid == researchers and _mode(table) == 0o640
    assert (ws.analysis / "panel").stat().st_gid == researchers and _mode(ws.analysis / "panel") == 0o2750
    links = write_text(ws.linked / "links.csv", "a\n")
    assert links.stat().st_gid == processors and _mode(links) == 0o640
