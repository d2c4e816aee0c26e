"""Cell suppression for frequency tables: primary (small cells), secondary (protecting them), rounding.

A released table with margins is a set of linear equations: every total equals the sum of the
cells it covers. Suppressing a small cell alone is useless when it is the only unknown in its row.
Secondary suppression therefore *audits* the suppression pattern the way an attacker would: for
each small cell it solves two linear programmes (the smallest and largest value the cell can take
given every published number and that counts are not negative). A cell whose interval has
shrunk to a single value is exposed, and the smallest published cell on one of its lines is
suppressed as well, until no small cell can be pinned down. This works for any number of
dimensions with all their margins, not only 1- and 2-way tables.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from analysis.disclosure.outputs import TOTAL, FrequencyTable

CellKey = tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """A frequency table as cells (interior and margins) and the equations that tie them together.

    Margins are always part of the grid, because they exist whether or not this table publishes
    them: another release may have published them already. ``margins_published`` says whether
    this table shows them.
    """

    dimensions: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    counts: dict[CellKey, int]
    #: each equation: (total cell, the cells that add up to it)
    equations: tuple[tuple[CellKey, tuple[CellKey, ...]], ...]
    margins_published: bool = True

    @property
    def keys(self) -> list[CellKey]:
        """The cells this table publishes (interior, then margins when published), in order."""
        return [k for k in self.counts if self.margins_published or not self.is_margin(k)]

    @property
    def margin_keys(self) -> set[CellKey]:
        return {k for k in self.counts if self.is_margin(k)}

    def is_margin(self, key: CellKey) -> bool:
        return TOTAL in key

    def label(self, key: CellKey) -> str:
        return ", ".join(f"{d}={v}" for d, v in zip(self.dimensions, key, strict=True))

    def lines_through(self, key: CellKey) -> list[tuple[CellKey, tuple[CellKey, ...]]]:
        """The equations a cell appears in (as the total or as one of the parts)."""
        return [eq for eq in self.equations if eq[0] == key or key in eq[1]]


def full_counts(
    dimensions: tuple[str, ...], interior: dict[CellKey, int]
) -> tuple[tuple[tuple[str, ...], ...], dict[CellKey, int]]:
    """Categories per dimension and the counts of every cell and margin of a long-format table."""
    categories = tuple(tuple(dict.fromkeys(str(k[i]) for k in interior)) for i in range(len(dimensions)))
    counts: dict[CellKey, int] = {key: 0 for key in itertools.product(*categories)}
    for key, n in interior.items():
        counts[tuple(str(v) for v in key)] = int(n)
    margins: dict[CellKey, int] = {}
    for mask in itertools.product((False, True), repeat=len(dimensions)):
        if not any(mask):
            continue
        for key in itertools.product(
            *[(TOTAL,) if m else cats for m, cats in zip(mask, categories, strict=True)]
        ):
            margins[key] = 0
        for key, n in list(counts.items()):
            margin = tuple(TOTAL if m else v for m, v in zip(mask, key, strict=True))
            margins[margin] += n
    counts.update(margins)
    return categories, counts


def build_grid(table: FrequencyTable) -> Grid:
    """Cells of ``table`` (categories as text), every margin, and the equations between them."""
    dims = table.dimensions
    df = table.table
    interior: dict[CellKey, int] = {
        tuple(str(v) for v in row[:-1]): int(row[-1])
        for row in df[[*dims, table.count_column]].itertuples(index=False)
    }
    categories, counts = full_counts(dims, interior)
    equations: list[tuple[CellKey, tuple[CellKey, ...]]] = []
    for key in counts:
        for i, v in enumerate(key):
            if v == TOTAL:
                parts = tuple((*key[:i], c, *key[i + 1 :]) for c in categories[i])
                equations.append((key, parts))
    return Grid(dims, categories, counts, tuple(equations), margins_published=table.margins)


def primary_suppression(grid: Grid, min_count: int, zeros_disclosive: bool) -> dict[CellKey, str]:
    """Cells below the threshold (and zeros, when zeros are disclosive) -> reason."""
    reasons: dict[CellKey, str] = {}
    for key in grid.keys:
        n = grid.counts[key]
        if 0 < n < min_count:
            reasons[key] = f"fewer than {min_count} people (threshold rule)"
        elif n == 0 and zeros_disclosive:
            reasons[key] = (
                "an empty cell, and the policy treats zeros as disclosive (they reveal that nobody in a group has a characteristic)"
            )
    return reasons


def _system(grid: Grid, suppressed: set[CellKey]) -> tuple[dict[CellKey, int], np.ndarray, np.ndarray]:
    """The equations an attacker has: A x = b over the suppressed cells x, from every published cell."""
    unknown = sorted(suppressed)
    index = {k: i for i, k in enumerate(unknown)}
    rows, rhs = [], []
    for total, parts in grid.equations:
        if not any(k in index for k in (total, *parts)):
            continue
        row = np.zeros(len(unknown))
        b = 0.0
        for k, sign in [(total, -1.0)] + [(p, 1.0) for p in parts]:
            if k in index:
                row[index[k]] += sign
            else:
                b -= sign * grid.counts[k]
        rows.append(row)
        rhs.append(b)
    return index, np.array(rows).reshape(len(rows), len(unknown)), np.array(rhs)


def feasible_interval(grid: Grid, suppressed: set[CellKey], target: CellKey) -> tuple[float, float]:
    """The smallest and largest value ``target`` can take given every published cell (two LPs)."""
    index, a_eq, b_eq = _system(grid, suppressed)
    if not len(b_eq):
        return 0.0, float("inf")
    c = np.zeros(len(index))
    c[index[target]] = 1.0
    bounds = [(0, None)] * len(index)
    lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    low = lo.fun if lo.status == 0 else 0.0
    high = -hi.fun if hi.status == 0 else float("inf")
    return float(low), float(high)


def _determined(a: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Which unknowns of ``a x = b`` are fixed by the equations alone (whatever ``b`` is).

    Gauss-Jordan elimination with partial pivoting: an unknown is fixed when it is a pivot whose
    reduced row has no free unknown in it. Written with element-wise numpy rather than LAPACK,
    which is slower than this on small matrices when the machine's BLAS threads are contended.
    """
    m = a.astype(float).copy()
    rows, cols = m.shape
    pivots: list[tuple[int, int]] = []
    r = 0
    for c in range(cols):
        if r >= rows:
            break
        p = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[p, c]) <= tol:
            continue
        if p != r:
            m[[r, p]] = m[[p, r]]
        m[r] /= m[r, c]
        factors = m[:, c].copy()
        factors[r] = 0.0
        nz = np.nonzero(np.abs(factors) > tol)[0]
        if len(nz):
            m[nz] -= factors[nz, None] * m[r][None, :]
        pivots.append((r, c))
        r += 1
    pivot_cols = {c for _, c in pivots}
    free = np.array([c not in pivot_cols for c in range(cols)])
    fixed = np.zeros(cols, dtype=bool)
    for row, c in pivots:
        fixed[c] = not free.any() or bool(np.all(np.abs(m[row, free]) <= tol))
    return fixed


def exposed_cells(
    grid: Grid, suppressed: set[CellKey], protect: set[CellKey], use_bounds: bool = True
) -> list[CellKey]:
    """Cells in ``protect`` whose value can be worked out exactly from the published cells.

    Linear algebra first: a cell is pinned by the equations alone when elimination leaves it
    depending on no free cell. Otherwise it can move, unless every direction it can move in drives some
    other suppressed cell below zero, which needs a suppressed cell whose true value is 0; only
    then are the (slower) linear programmes solved, and only with ``use_bounds``.
    """
    index, a_eq, _ = _system(grid, suppressed)
    targets = sorted(k for k in protect if k in index)
    if not len(a_eq) or not targets:
        return []
    pinned = _determined(a_eq)
    exposed = [k for k in targets if pinned[index[k]]]
    if use_bounds and any(grid.counts[k] == 0 for k in index):
        for key in targets:
            if key not in exposed:
                low, high = feasible_interval(grid, suppressed, key)
                if high - low < 1.0 - 1e-9:
                    exposed.append(key)
    return sorted(exposed)


def _cost(grid: Grid, key: CellKey) -> float:
    """How much publishing is lost by hiding a cell: its size, far more for a total, most for a zero."""
    n = grid.counts[key]
    cost = float(n) + 1.0 if n > 0 else 1e6  # hiding a zero protects nothing: values are non-negative
    margins = sum(v == TOTAL for v in key)
    return cost + margins * 1e9


def _close_cycle_2d(
    grid: Grid, suppressed: set[CellKey], target: CellKey, known: set[CellKey]
) -> list[CellKey]:
    """Cheapest cells that put ``target`` on a cycle of suppressed cells in a 2-way table with margins.

    With margins, a 2-way table is a bipartite graph (rows and columns, the Total row and column
    included) whose edges are cells; every row and column sums to zero once totals are negated.
    A suppressed cell can be moved without changing any published number exactly when it lies on
    a cycle of suppressed cells, so the cheapest protection is the cheapest path from its row to
    its column that avoids the cell itself (already-suppressed cells cost nothing, cells known
    from earlier releases cannot be used).
    """
    adjacency: dict[tuple[str, str], list[tuple[tuple[str, str], CellKey]]] = {}
    for key in grid.counts:
        if key == target or key in known:
            continue
        r, c = ("r", key[0]), ("c", key[1])
        adjacency.setdefault(r, []).append((c, key))
        adjacency.setdefault(c, []).append((r, key))
    start, goal = ("r", target[0]), ("c", target[1])
    best: dict[tuple[str, str], float] = {start: 0.0}
    back: dict[tuple[str, str], tuple[tuple[str, str], CellKey]] = {}
    queue: list[tuple[float, tuple[str, str]]] = [(0.0, start)]
    while queue:
        dist, node = heapq.heappop(queue)
        if node == goal:
            break
        if dist > best.get(node, float("inf")):
            continue
        for nxt, key in adjacency.get(node, []):
            step = 0.0 if key in suppressed else _cost(grid, key)
            if dist + step < best.get(nxt, float("inf")):
                best[nxt] = dist + step
                back[nxt] = (node, key)
                heapq.heappush(queue, (dist + step, nxt))
    if goal not in back:
        return []
    path, node = [], goal
    while node != start:
        node, key = back[node]
        if key not in suppressed:
            path.append(key)
    return path


def secondary_suppression(
    grid: Grid,
    primary: set[CellKey],
    hidden: set[CellKey] = frozenset(),  # type: ignore[assignment]
    known: set[CellKey] = frozenset(),  # type: ignore[assignment]
) -> tuple[dict[CellKey, CellKey], bool]:
    """Extra cells to suppress so no primary cell can be recovered: secondary cell -> cell it protects.

    ``hidden`` cells are unknown to a reader without being suppressed (margins this table does not
    publish); ``known`` cells are known to a reader from earlier releases even if this table hides
    them, so they can never serve as protection. Also returns whether the final pattern passed
    the audit (False only if no usable cell was left to hide).

    2-way tables with margins close the cheapest cycle through each exposed cell; other shapes
    (1-way, 3 or more dimensions) add, one at a time, the cheapest cell on a line through an
    exposed cell, preferring one that protects the small cell on its own. Every round is audited
    by linear programming, so the result is checked, not assumed.
    """
    suppressed = set(primary) | (set(hidden) - set(known))
    primary = set(primary) - set(known)  # a cell already published elsewhere cannot be protected here
    added: dict[CellKey, CellKey] = {}
    two_way = len(grid.dimensions) == 2
    # Search with the equations alone (fast), then audit once more with non-negativity (LPs) and
    # carry on in that mode only if zeros pin a cell down.
    use_bounds = False
    for _ in range(2 * len(grid.counts) + 2):
        exposed_primary = exposed_cells(grid, suppressed, primary, use_bounds)
        if not exposed_primary:
            if use_bounds:
                return added, True
            use_bounds = True
            continue
        target = exposed_primary[0]
        chosen: list[CellKey] = _close_cycle_2d(grid, suppressed, target, set(known)) if two_way else []
        if not chosen:
            pinned = [
                target,
                *(k for k in exposed_cells(grid, suppressed, suppressed, False) if k not in primary),
            ]
            candidates: set[CellKey] = set()
            for key in pinned:
                for total, parts in grid.lines_through(key):
                    candidates.update(parts)
                    candidates.add(total)
            candidates -= suppressed | set(known)
            if not candidates:
                candidates = set(grid.counts) - suppressed - set(known)
            if not candidates:
                return added, False
            ranked = sorted(candidates, key=lambda k: (_cost(grid, k), k))
            chosen = [ranked[0]]
            for key in ranked[:8]:
                if not exposed_cells(grid, suppressed | {key}, {target}, use_bounds):
                    chosen = [key]
                    break
        for key in chosen:
            suppressed.add(key)
            added[key] = target
    return added, not exposed_cells(grid, suppressed, primary)


def round_to_base(n: int, base: int) -> int:
    """Round half up to the nearest multiple of ``base`` (12 -> 10, 13 -> 15 for base 5)."""
    if base <= 1:
        return int(n)
    return int(base * np.floor(n / base + 0.5))


def released_frequency_table(
    table: FrequencyTable, grid: Grid, withheld: set[CellKey], rounding_base: int
) -> pd.DataFrame:
    """The protected table: dimension columns, ``count_<unit>_rounded`` (empty when withheld), note.

    Every withheld cell gets the same note, ``suppressed``: saying which ones were small would
    tell a reader which cells are below the threshold.
    """
    column = f"count_{table.unit}_rounded"
    rows = []
    for key in grid.keys:
        n = grid.counts[key]
        row = dict(zip(grid.dimensions, key, strict=True))
        if key in withheld:
            row[column] = pd.NA
            row["note"] = "suppressed"
        else:
            row[column] = round_to_base(n, rounding_base)
            row["note"] = ""
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*grid.dimensions, column, "note"])
    out[column] = out[column].astype("Int64")
    return out
