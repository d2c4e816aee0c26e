"""The workspace: one directory per deployment, split into zones with different rules.

Zones exist so that *where* a file lives says *who* may read it: identifiable extracts stay in
``landing/`` and are read only by ingest, validation and pseudonymisation; researchers work from
``analysis/``; only ``outputs/released/`` ever leaves the TRE. Every write is atomic (temporary path,
then ``os.replace``) so a crash never leaves a half-written table that a later stage could mistake
for a complete one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

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
    "audit": "audit",
    "reports": "reports",
    "reference": "reference",
    "truth": "truth",
}


@dataclass(frozen=True)
class Workspace:
    """A workspace root and its zones. Creating one never deletes anything."""

    root: Path

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, create: bool = True) -> Workspace:
        """Open the workspace at ``root``, ``$EHL_WORKSPACE`` or ``./workspace``, creating zones."""
        chosen = Path(root) if root is not None else Path(os.environ.get(WORKSPACE_ENV, DEFAULT_WORKSPACE))
        ws = cls(chosen.resolve())
        if create:
            for rel in ZONES.values():
                (ws.root / rel).mkdir(parents=True, exist_ok=True)
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
# Atomic writes


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    """A unique temporary name in the same directory, so the final rename never crosses filesystems."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``path``, on error it is removed."""
    final = Path(path)
    tmp = _tmp_sibling(final, final.suffix)
    try:
        yield tmp
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
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    shutil.rmtree(tmp)  # callers such as Spark want to create the directory themselves
    try:
        yield tmp
        if not tmp.exists():
            tmp.mkdir()
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


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
