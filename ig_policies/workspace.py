"""The workspace: one directory per deployment, split into zones with different rules.

Zones exist so that *where* a file lives says *who* may read it: identifiable extracts stay in
``landing/`` and are read only by ingest, validation and pseudonymisation; researchers work from
``analysis/`` (read-only to them: the data processors write it) and keep their own working files in
``research/``; only ``outputs/released/`` ever leaves the TRE. Every write is atomic (temporary path,
then ``os.replace``) so a crash never leaves a half-written table that a later stage could mistake
for a complete one.

Who may read and write each zone is data (``ZONE_ACCESS``), applied to the directories by
``apply_zone_permissions``. With a ``ZoneGroups`` (the OS group of each role, from the deployment)
each zone directory gets its role's group and a setgid mode, so files inherit the group; with none
(the demo, one account) the identifiable, pseudonymised and linked zones, the stage ledger and the
researchers' working folder are 0700 and the others 0750. Every writer here gives files at most 0640, and 0600 where the directory is not
group-readable, whatever the process umask; ``restrict_umask`` sets 027 for the rest (the ``ehl``
CLI and the Prefect flows call it at start-up). Spark writes with Hadoop's own permissions (0644),
so ``atomic_directory`` tightens a finished table before its rename.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ig_policies.errors import EnvironmentProblem, environment_problem

WORKSPACE_ENV = "EHL_WORKSPACE"
DEFAULT_WORKSPACE = Path("workspace")

#: zone name -> relative directory. ``truth`` exists only in synthetic workspaces and no pipeline
#: stage may read it; ``reference`` holds published aggregate area data (census, QOF), not people.
ZONES: dict[str, str] = {
    "landing": "landing",
    "quarantine": "quarantine",
    "pseudonymised": "pseudonymised",
    "linked": "linked",
    "analysis": "analysis",
    "pending": "outputs/pending",
    "released": "outputs/released",
    "ledger": "outputs/ledger",
    "decisions": "outputs/decisions",
    "audit": "audit",
    "reports": "reports",
    "reference": "reference",
    "truth": "truth",
    "state": ".state",
    "research": "research",
}

#: The roles that own or read zones: the three policy roles, the audit log's writer and the output
#: gate (the service that alone writes pending requests).
ZoneRole = Literal["data_processor", "researcher", "ig_officer", "audit_writer", "output_gate"]


@dataclass(frozen=True)
class ZoneAccess:
    """Who writes a zone, who reads it, and the modes that say so on disk.

    A directory has one group, so ``group`` names the role whose OS group it gets: the writers'
    when only they read it (mode ``grouped_mode`` lets the group write), or the readers' when
    another role reads it (the group may read; only the owning account, the writer's, writes).
    ``alone_mode`` applies when no groups are given (one account does everything).
    """

    writer: ZoneRole
    readers: frozenset[ZoneRole]
    group: ZoneRole
    grouped_mode: int
    alone_mode: int

    @property
    def processors_only(self) -> bool:
        """Only data processors may read it (identifiers, pseudonyms, links, truth, quality reports)."""
        return self.readers == {"data_processor"}


_PROCESSORS_ONLY = ZoneAccess(
    "data_processor", frozenset({"data_processor"}), "data_processor", 0o2770, 0o700
)

#: zone name -> its access: the one place that says which role owns and which roles read a zone.
#: Staging folders live inside their zone and are 0700 whatever the zone's mode.
ZONE_ACCESS: dict[str, ZoneAccess] = {
    "landing": _PROCESSORS_ONLY,  # extracts as received, validated/ and its staging folders
    "quarantine": _PROCESSORS_ONLY,
    "pseudonymised": _PROCESSORS_ONLY,
    "linked": _PROCESSORS_ONLY,
    "truth": _PROCESSORS_ONLY,  # synthetic identities: as sensitive as landing
    # the processing stages' ledger (content hashes, paths, parameters): what resumes a run
    "state": _PROCESSORS_ONLY,
    # the researchers' own working folder: the analyses' stage ledger; nothing in it leaves the
    # TRE except through an output request
    "research": ZoneAccess("researcher", frozenset({"researcher"}), "researcher", 0o2770, 0o700),
    # validation Data Docs can show failing values, so reports stay with the processors
    "reports": ZoneAccess("data_processor", frozenset({"data_processor"}), "data_processor", 0o2750, 0o750),
    # the research dataset: written by processors, read by researchers
    "analysis": ZoneAccess(
        "data_processor", frozenset({"data_processor", "researcher"}), "researcher", 0o2750, 0o750
    ),
    "reference": ZoneAccess(
        "data_processor", frozenset({"data_processor", "researcher"}), "researcher", 0o2750, 0o750
    ),
    # written only by the output gate's account (it owns the folder), read by officers
    "pending": ZoneAccess("output_gate", frozenset({"ig_officer"}), "ig_officer", 0o2750, 0o750),
    # officers' signed decisions on requests, one flat file each: any officer adds a file, and the
    # sticky bit keeps each officer's files theirs (nobody removes or renames another's)
    "decisions": ZoneAccess("ig_officer", frozenset({"ig_officer"}), "ig_officer", 0o3770, 0o750),
    # written by the release step (an officer), read by officers
    "released": ZoneAccess("ig_officer", frozenset({"ig_officer"}), "ig_officer", 0o2770, 0o750),
    # the audit log's writer owns it; whoever verifies it reads it through the writer's group
    # what has left: the true counts behind every release, for the differencing check (officers only)
    "ledger": ZoneAccess("ig_officer", frozenset({"ig_officer"}), "ig_officer", 0o2770, 0o750),
    "audit": ZoneAccess("audit_writer", frozenset(ZoneRole.__args__), "audit_writer", 0o2750, 0o750),  # type: ignore[attr-defined]
}

#: The mode of a staging folder: its rows are as sensitive as its zone's, and only this run uses it.
STAGING_MODE = 0o700
STAGING_PREFIX = ".staging-"
#: Temporary names of the atomic writers carry the pid so a dead run's leftovers can be told apart.
_LEFTOVER = re.compile(
    r"^\.(?:staging-(?P<staging>\d+)(?:-[0-9a-f]+)?|.+\.pid(?P<tmp>\d+)\..*\.tmp.*|.+\.old-(?P<old>\d+))$"
)


class ZoneGroups(BaseModel):
    """The OS group of each role (from the deployment file); a role without a group is left alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_processor: str | None = None
    researcher: str | None = None
    ig_officer: str | None = None
    audit_writer: str | None = None
    output_gate: str | None = None


def restrict_umask() -> None:
    """Set the process umask to 027: nothing this process creates is group-writable or world-readable.

    Called once at start-up by the ``ehl`` CLI and the Prefect flows (the writers below do not rely
    on it; files written by other libraries do).
    """
    os.umask(0o027)


@dataclass(frozen=True)
class Workspace:
    """A workspace root and its zones. Creating one never deletes anything."""

    root: Path

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        create: bool = True,
        groups: ZoneGroups | None = None,
    ) -> Workspace:
        """Open the workspace at ``root``, ``$EHL_WORKSPACE`` or ``./workspace``, creating zones.

        With ``create`` the zones exist afterwards with the modes (and, given ``groups``, the OS
        groups) of ``ZONE_ACCESS``; see ``apply_zone_permissions``.
        """
        chosen = Path(root) if root is not None else Path(os.environ.get(WORKSPACE_ENV, DEFAULT_WORKSPACE))
        ws = cls(chosen.resolve())
        if create:
            ws.root.mkdir(parents=True, exist_ok=True)
            for rel in ZONES.values():
                (ws.root / rel).mkdir(parents=True, exist_ok=True)
            apply_zone_permissions(ws, groups)
        return ws

    def zone(self, name: str) -> Path:
        """The directory of a zone by name (see ``ZONES``)."""
        try:
            return self.root / ZONES[name]
        except KeyError:
            raise ValueError(f"unknown workspace zone {name!r}; zones are: {', '.join(ZONES)}") from None

    @property
    def landing(self) -> Path:
        return self.zone("landing")

    @property
    def quarantine(self) -> Path:
        return self.zone("quarantine")

    @property
    def pseudonymised(self) -> Path:
        return self.zone("pseudonymised")

    @property
    def linked(self) -> Path:
        return self.zone("linked")

    @property
    def analysis(self) -> Path:
        return self.zone("analysis")

    @property
    def pending(self) -> Path:
        return self.zone("pending")

    @property
    def released(self) -> Path:
        return self.zone("released")

    @property
    def audit(self) -> Path:
        return self.zone("audit")

    @property
    def reports(self) -> Path:
        return self.zone("reports")

    @property
    def reference(self) -> Path:
        return self.zone("reference")

    @property
    def truth(self) -> Path:
        return self.zone("truth")


# --------------------------------------------------------------------------------------------
# Zone permissions and staging folders


def _group_id(zone: str, group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise EnvironmentProblem(
            f"workspace zone {zone!r}",
            f"the OS group {group!r} named for it in the deployment does not exist",
            hint="create the group (groupadd) or correct the deployment file's groups",
        ) from None


def apply_zone_permissions(workspace: Workspace, groups: ZoneGroups | None = None) -> None:
    """Give each zone directory the group and mode ``ZONE_ACCESS`` says.

    Only directories this account owns are changed (each account opens the workspace; the one
    that set it up owns the zones and is the only one that can change them). With ``groups``, a
    zone whose role has a group gets it and the setgid ``grouped_mode``; without, ``alone_mode``.
    Raises ``EnvironmentProblem`` naming the zone and the group if the group does not exist or
    this account may not give it (it must own the directory and belong to the group, or be root).
    """
    uid = os.geteuid()
    root = workspace.root.stat()
    if uid in (0, root.st_uid):  # others may pass through the root to their zones, never list it
        _set_mode(workspace.root, stat.S_IMODE(root.st_mode) & ~0o026)
    for zone, access in ZONE_ACCESS.items():
        path = workspace.zone(zone)
        if not path.is_dir() or (uid != 0 and path.stat().st_uid != uid):
            continue
        group = getattr(groups, access.group) if groups is not None else None
        if group is None:
            _set_mode(path, access.alone_mode)
            continue
        gid = _group_id(zone, group)
        try:  # only what differs: the owner may be outside the readers' group (see ``_set_mode``)
            if path.stat().st_gid != gid:
                os.chown(path, -1, gid)
        except OSError as exc:
            raise EnvironmentProblem(
                str(path),
                f"cannot give workspace zone {zone!r} the OS group {group!r} ({exc.strerror})",
                hint="set the workspace up as root or as an account that belongs to that group",
            ) from None
        _set_mode(path, access.grouped_mode)
        if stat.S_IMODE(path.stat().st_mode) != access.grouped_mode:
            # the kernel drops setgid when an account outside the group sets the mode; files
            # made in the zone would then get the writer's own group, which its readers lack
            raise EnvironmentProblem(
                str(path),
                f"workspace zone {zone!r} must be mode {access.grouped_mode:o} with the OS group {group!r}, "
                f"and this account, which is not in that group, cannot set it",
                hint="the TRE administrator sets the zones up as root (see docs/ARCHITECTURE.md, 'Deployment')",
            )


def _set_mode(path: Path, mode: int) -> None:
    """Give ``path`` ``mode``, touching it only if it differs: an unchanged mode is never re-set,
    because setting it again as an account outside the folder's group would drop its setgid bit."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    except OSError as exc:  # e.g. an immutable folder: the zone's rule cannot be guaranteed
        raise environment_problem(exc, str(path), "write") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's live process
    return True


def remove_stale_staging(workspace: Workspace) -> list[Path]:
    """Remove staging folders and temporary writes left in any zone by runs that are no longer alive.

    A name carries its run's pid (``.staging-<pid>``, the atomic writers' ``.<name>.pid<pid>.…tmp``
    and ``.<name>.old-<pid>``); a live process's folder is never touched, so concurrent runs are
    safe. Pids are those of this machine: a workspace shared by several hosts needs one sweeping
    host. Returns what was removed, for the stage to report.
    """
    removed: list[Path] = []
    for rel in ZONES.values():
        zone = workspace.root / rel
        if not zone.is_dir():
            continue
        for path in sorted(_leftovers(zone)):
            match = _LEFTOVER.match(path.name)
            pid = int(next(g for g in match.groups() if g is not None))  # type: ignore[union-attr]
            if pid == os.getpid() or _pid_alive(pid):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _leftovers(folder: Path, depth: int = 3) -> Iterator[Path]:
    """Hidden leftovers in ``folder`` and its visible sub-folders (zones nest tables two deep)."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return
    for child in children:
        if child.name.startswith(".") and _LEFTOVER.match(child.name):
            yield child
        elif depth > 1 and child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
            yield from _leftovers(child, depth - 1)


def private_scratch(name: str) -> Path:
    """This account's own scratch folder ``<tmp>/<name>-<uid>`` (Spark's shuffle files, DuckDB's
    spill), 0700: each account that runs a stage gets its own, so a shared machine's accounts
    neither collide on one folder nor read each other's intermediate rows.

    Raises ``EnvironmentProblem`` if the folder exists but belongs to another account or is open
    to others (someone made it first to read what spills into it).
    """
    folder = Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise EnvironmentProblem(
            str(folder),
            "this account's scratch folder belongs to another account or is open to others "
            f"(mode {stat.filemode(info.st_mode)}), so intermediate rows written there could be read",
            hint=f"remove {folder} (the TRE administrator can) and run the command again",
        )
    return folder


def staging_folder(parent: str | os.PathLike[str], tag: str | None = None) -> Path:
    """This run's staging folder inside ``parent`` (which must be in the zone of its rows), 0700.

    ``tag`` (lower-case hex) tells apart several staging folders of one run in the same place,
    e.g. one per audited step (``.staging-<pid>-<tag>``); the start-up sweep recognises both forms.
    A setgid parent keeps its setgid bit on the folder, so what is written there already has the
    zone's group when it is renamed into the zone.
    """
    name = f"{STAGING_PREFIX}{os.getpid()}" + (f"-{tag}" if tag else "")
    folder = Path(parent) / name
    make_zone_folder(folder.parent)
    folder.mkdir(mode=STAGING_MODE, exist_ok=True)
    _set_mode(
        folder, STAGING_MODE | (folder.parent.stat().st_mode & stat.S_ISGID)
    )  # a chmod could drop setgid
    return folder


def put_in_place(staged: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename the finished file or folder ``staged`` to ``final`` (same filesystem: no copy).

    It is sealed to the modes of ``final``'s folder first. An existing ``final`` is moved aside
    (``.<name>.old-<pid>``) and removed only once the new one is in place, so readers see the old
    complete output or the new complete one; a crash in between leaves the aside copy for the
    start-up sweep (``remove_stale_staging``).
    """
    staged, final = Path(staged), Path(final)
    make_zone_folder(final.parent)
    seal_tree(staged, like=final.parent)
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Atomic writes


def _file_mode(directory: Path) -> int:
    """0640 in a group-readable directory, else 0600: a file is never readable beyond its folder."""
    return 0o640 if directory.stat().st_mode & stat.S_IRGRP else 0o600


def make_zone_folder(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` and its missing parents, each with the mode of the folder it is in
    (at most 2750 with setgid kept), so a sub-folder is never more open than its zone.

    Use it instead of ``Path.mkdir`` for any folder inside a zone: ``mkdir`` follows the umask.
    """
    directory = Path(directory)
    missing: list[Path] = []
    here = directory
    while not here.exists():
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        mode = stat.S_IMODE(folder.parent.stat().st_mode) & 0o2750
        with contextlib.suppress(FileExistsError):
            # born with the mode (setgid comes from the parent), so no chmod is needed: a chmod by
            # an account outside the folder's group would drop the setgid (see ``_set_mode``)
            folder.mkdir(mode=(mode | 0o700) & 0o777)
            _set_mode(folder, mode | 0o700)
    return directory


def seal_tree(path: str | os.PathLike[str], like: str | os.PathLike[str] | None = None) -> None:
    """Tighten a finished file or folder tree (e.g. Spark's output) to what its parent folder allows.

    Folders get the parent's mode (at most 2750) and files 0640 or 0600 (see ``_file_mode``).
    ``like`` names the folder whose rules apply instead of the parent: the zone folder a staged
    output is about to be renamed into.
    """
    top = Path(path)
    rules = Path(like) if like is not None else top.parent
    parent_mode = stat.S_IMODE(rules.stat().st_mode) & 0o2750 | 0o700
    file_mode = _file_mode(rules)
    if top.is_file():
        top.chmod(file_mode)
        return
    _set_mode(top, parent_mode)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames:
            _set_mode(Path(dirpath, name), parent_mode)
        for name in filenames:
            target = Path(dirpath, name)
            if not target.is_symlink():
                target.chmod(file_mode)


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    """A unique temporary name in the same directory, so the final rename never crosses filesystems."""
    make_zone_folder(path.parent)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.pid{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent
    )
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``path``, on error it is removed.

    The file gets ``mode`` (default: 0640 in a group-readable folder, else 0600) before its rename,
    so it is never readable more widely, not even for an instant.
    """
    final = Path(path)
    tmp = _tmp_sibling(final, final.suffix)
    try:
        yield tmp
        tmp.chmod(_file_mode(final.parent) if mode is None else mode)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces the directory ``path`` (e.g. a Spark output).

    An existing directory at ``path`` is moved aside first and removed only once the new one is in
    place, so readers see either the old complete table or the new complete table.
    """
    final = Path(path)
    make_zone_folder(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.pid{os.getpid()}.", suffix=".tmp", dir=final.parent))
    shutil.rmtree(tmp)  # callers such as Spark want to create the directory themselves
    try:
        yield tmp
        if not tmp.exists():
            tmp.mkdir()
        put_in_place(tmp, final)  # sealed first: Spark/Hadoop write 0644 whatever the umask
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> Path:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> Path:
    return write_bytes(path, text.encode("utf-8"), mode)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a pandas table as one Parquet file, atomically and deterministically (no index)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


# --------------------------------------------------------------------------------------------
# Content hashes: how the audit log and the resumable flows recognise "the same input"


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a directory's files (relative names and contents, sorted).

    Hidden files (Spark's ``.crc`` and ``_SUCCESS`` markers) are ignored so that the same data
    written twice hashes the same.
    """
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    if not p.is_dir():
        raise FileNotFoundError(f"cannot hash {p}: it does not exist")
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        rel = f.relative_to(p).as_posix()
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        h.update(rel.encode())
        h.update(b"\0")
        h.update(file_sha256(f).encode())
        h.update(b"\n")
    return h.hexdigest()
