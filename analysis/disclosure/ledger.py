"""The release ledger: what has already left the TRE from each source dataset.

Two tables that are each safe can still be subtracted from one another: release the clients by age
band, then the same table with one small group left out, and the difference is that group. The
ledger keeps, per source dataset, the true (unrounded) counts behind every released table, so each
new request is compared with everything released before it from the same data. It lives in
``outputs/ledger/`` inside the TRE and is never released itself; it holds aggregates only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.disclosure.outputs import TOTAL, DisclosureOutput, Figure, FrequencyTable, MagnitudeTable
from analysis.disclosure.report import CheckReport
from analysis.disclosure.suppression import Grid, build_grid, full_counts
from ig_policies.workspace import Workspace, write_json


@dataclass(frozen=True)
class LedgerEntry:
    """The counts behind one released table (interior cells, by dimension values)."""

    request_id: str
    title: str
    source: str
    unit: str
    dimensions: tuple[str, ...]
    cells: tuple[tuple[tuple[str, ...], int], ...]
    released_at: str = ""
    #: cells (margins included, ``Total`` for a summed dimension) that the release did NOT show
    hidden: tuple[tuple[str, ...], ...] = ()

    def published_cells(self) -> dict[tuple[str, ...], int]:
        """Every cell and margin a reader of this release can see, with its true count."""
        _, counts = full_counts(self.dimensions, dict(self.cells))
        hidden = set(self.hidden)
        return {k: n for k, n in counts.items() if k not in hidden}

    @property
    def total(self) -> int:
        return sum(n for _, n in self.cells)

    def marginal(self, dimension: str) -> dict[str, int]:
        i = self.dimensions.index(dimension)
        out: dict[str, int] = {}
        for key, n in self.cells:
            out[key[i]] = out.get(key[i], 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "title": self.title,
            "source": self.source,
            "unit": self.unit,
            "dimensions": list(self.dimensions),
            "cells": [[list(k), n] for k, n in self.cells],
            "released_at": self.released_at,
            "hidden": [list(k) for k in self.hidden],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LedgerEntry:
        return cls(
            request_id=d["request_id"],
            title=d["title"],
            source=d["source"],
            unit=d["unit"],
            dimensions=tuple(d["dimensions"]),
            cells=tuple((tuple(k), int(n)) for k, n in d["cells"]),
            released_at=d.get("released_at", ""),
            hidden=tuple(tuple(k) for k in d.get("hidden", [])),
        )


def ledger_dir(workspace: Workspace) -> Path:
    return workspace.zone("ledger")


def _ledger_file(workspace: Workspace, source: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", source).strip("_") or "unnamed"
    return ledger_dir(workspace) / f"{slug}.json"


def read_ledger(workspace: Workspace, source: str | None = None) -> tuple[LedgerEntry, ...]:
    """Entries for one source (or all sources), oldest first."""
    directory = ledger_dir(workspace)
    if not directory.exists():
        return ()
    files = [_ledger_file(workspace, source)] if source is not None else sorted(directory.glob("*.json"))
    entries: list[LedgerEntry] = []
    for f in files:
        if f.exists():
            entries.extend(LedgerEntry.from_dict(d) for d in json.loads(f.read_text())["entries"])
    if source is not None:
        entries = [e for e in entries if e.source == source]
    return tuple(sorted(entries, key=lambda e: (e.released_at, e.request_id)))


def append_ledger(workspace: Workspace, entry: LedgerEntry) -> Path:
    """Record a release (atomically rewrites the source's ledger file)."""
    path = _ledger_file(workspace, entry.source)
    existing = json.loads(path.read_text())["entries"] if path.exists() else []
    existing = [e for e in existing if e["request_id"] != entry.request_id]
    existing.append(entry.to_dict())
    return write_json(path, {"source": entry.source, "entries": existing})


@dataclass(frozen=True)
class Difference:
    """Two released numbers whose difference is a small, non-empty group of people."""

    earlier: LedgerEntry
    item: str
    description: str
    #: False when the match is a heuristic (regrouped categories) that an officer should judge
    certain: bool = True


def small_differences(new: LedgerEntry, earlier: LedgerEntry, min_count: int) -> list[Difference]:
    """Ways ``new`` and ``earlier`` could be subtracted to reveal fewer than ``min_count`` people.

    Compared: the two totals; the margins of every dimension both tables share (same category,
    or, where the categories were regrouped, any pair of categories that exist in only one
    table); and, for tables with the same dimensions, each cell with its counterpart.
    """
    if new.unit != earlier.unit:
        return []

    def small(a: int, b: int) -> bool:
        return 0 < abs(a - b) < min_count

    found: list[Difference] = []
    name = f"'{earlier.title}' ({earlier.request_id})"
    if small(new.total, earlier.total):
        found.append(
            Difference(
                earlier,
                "table total",
                f"this table's total differs from the total of released output {name} by fewer than "
                f"{min_count} {new.unit}: subtracting one from the other reveals that small group",
            )
        )
    for dim in (d for d in new.dimensions if d in earlier.dimensions):
        a, b = new.marginal(dim), earlier.marginal(dim)
        for cat in sorted(set(a) & set(b)):
            if small(a[cat], b[cat]):
                found.append(
                    Difference(
                        earlier,
                        f"{dim}={cat} (all other categories combined)",
                        f"the number of {new.unit} with {dim}={cat} differs from released output {name} "
                        f"by fewer than {min_count}: the two tables cover slightly different groups",
                    )
                )
        only_new, only_old = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        for ca in only_new:
            for cb in only_old:
                if small(a[ca], b[cb]):
                    found.append(
                        Difference(
                            earlier,
                            f"{dim}={ca} against {dim}={cb}",
                            f"category {ca!r} here and {cb!r} in released output {name} differ by fewer than "
                            f"{min_count} {new.unit}: regrouping a category by a few people reveals them "
                            "(if these categories are unrelated, this is a coincidence)",
                            certain=False,
                        )
                    )
    if set(new.dimensions) == set(earlier.dimensions) and new.dimensions:
        order = [earlier.dimensions.index(d) for d in new.dimensions]
        old_cells = {tuple(k[i] for i in order): n for k, n in earlier.cells}
        for key, n in new.cells:
            if key in old_cells and small(n, old_cells[key]):
                label = ", ".join(f"{d}={v}" for d, v in zip(new.dimensions, key, strict=True))
                found.append(
                    Difference(
                        earlier,
                        label,
                        f"this cell differs from the same cell of released output {name} by fewer than "
                        f"{min_count} {new.unit}",
                    )
                )
    return found


def ledger_entry_for(
    output: DisclosureOutput,
    request_id: str = "",
    released_at: str = "",
    report: CheckReport | None = None,
) -> LedgerEntry | None:
    """The true counts an output adds to the release ledger (None for model results).

    With the ``report`` of the release, the entry also records which cells the release did not
    show (suppressed cells, and margins the table did not publish).
    """
    if isinstance(output, Figure):
        return ledger_entry_for(output.table, request_id, released_at, report)
    withheld = {f.key for f in report.withheld} if report is not None else set()
    if isinstance(output, FrequencyTable):
        grid = build_grid(output)
        cells = tuple((k, n) for k, n in grid.counts.items() if not grid.is_margin(k))
        hidden = withheld | (set() if output.margins else grid.margin_keys)
        unit = output.unit
    elif isinstance(output, MagnitudeTable):
        cells = tuple((k, len(v)) for k, v in output.cells().items())
        _, counts = full_counts(output.dimensions, dict(cells))
        hidden = withheld | {k for k in counts if TOTAL in k}
        unit = "people"
    else:
        return None
    return LedgerEntry(
        request_id,
        output.title,
        output.source,
        unit,
        output.dimensions,
        cells,
        released_at,
        tuple(sorted(k for k in hidden if k is not None)),
    )


def known_from_earlier(
    grid: Grid, source: str, unit: str, earlier: Iterable[LedgerEntry]
) -> set[tuple[str, ...]]:
    """Cells of ``grid`` a reader already knows from earlier releases of the same people.

    An earlier release over a subset of this table's dimensions shows cells that are margins
    here. When its count equals this table's margin exactly, both count the same people, so the
    reader can use the earlier number in place of a margin this table hides. (When they differ
    a little, the differencing check refuses the table; when they differ a lot, they are not the
    same group.)
    """
    known: set[tuple[str, ...]] = set()
    for entry in earlier:
        if entry.source != source or entry.unit != unit or not set(entry.dimensions) <= set(grid.dimensions):
            continue
        for key, n in entry.published_cells().items():
            mapped = tuple(
                key[entry.dimensions.index(d)] if d in entry.dimensions else TOTAL for d in grid.dimensions
            )
            if grid.counts.get(mapped) == n:
                known.add(mapped)
    return known
