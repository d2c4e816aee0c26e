"""The typed outputs an analysis may ask to take out of the TRE.

Disclosure control can only judge what it understands, so analyses never hand over a bare
DataFrame: they say what kind of aggregate it is. Each type carries exactly the evidence its
rules need (people behind each cell or coefficient, per-contributor values for dominance) and the
``source`` it was computed from, which is how the release ledger spots two tables from the same
data that could be subtracted from each other.

Outputs are saved to and loaded from a directory (``save_output`` / ``load_output``) because a
request is checked when it is made and again, from the saved copy, when it is released.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ig_policies.errors import InputError
from ig_policies.workspace import make_zone_folder, write_bytes, write_json, write_parquet

#: Label used for margins (totals) in released frequency tables.
TOTAL = "Total"

#: Required columns of a model result's coefficient table.
COEFFICIENT_COLUMNS = ("term", "estimate", "ci_lower", "ci_upper", "p_value", "n_people")

ModelKind = Literal["regression", "event_study", "time_series", "estimates"]
MagnitudeStatistic = Literal["sum", "mean", "min", "max", "median", "percentile"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def _problem(what: str, problem: str, hint: str) -> InputError:
    return InputError(what, problem, hint)


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise _problem(
            what,
            f"the table has no column(s) {', '.join(missing)}",
            f"give a table with columns {', '.join(columns)}",
        )


@dataclass(frozen=True)
class FrequencyTable:
    """Counts of PEOPLE in long format: one row per cell, dimension columns plus a count column.

    Give the interior cells only (every combination of categories, zeros included where they are
    real zeros); disclosure control adds the margins (``margins=True``: a ``Total`` row for every
    dimension and their combinations), suppresses, rounds and names the released count column
    ``count_<unit>_rounded``. ``population`` says who is counted ("linked clients of both
    programmes"); ``source`` names the research dataset the people come from
    (e.g. ``analysis/clients``) so that tables from the same data are compared with each other.
    """

    table: pd.DataFrame
    dimensions: tuple[str, ...]
    source: str
    title: str
    count_column: str = "count"
    unit: str = "people"
    population: str = ""
    description: str = ""
    margins: bool = True

    def __post_init__(self) -> None:
        what = f"frequency table '{self.title}'"
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if not self.dimensions:
            raise _problem(
                what, "it has no dimension columns", "name the columns the counts are broken down by"
            )
        _require_columns(self.table, [*self.dimensions, self.count_column], what)
        counts = self.table[self.count_column]
        if counts.isna().any() or not all(float(v).is_integer() and v >= 0 for v in counts):
            raise _problem(
                what,
                f"column '{self.count_column}' must hold whole numbers of people (no gaps, no negatives)",
                "count people per cell, with 0 for an empty cell",
            )
        if self.table[list(self.dimensions)].isna().any().any():
            raise _problem(
                what, "a dimension column has empty values", "label missing values, e.g. 'Not known'"
            )
        if self.table.duplicated(list(self.dimensions)).any():
            raise _problem(
                what, "the same cell appears twice", "aggregate to one row per combination of categories"
            )
        for dim in self.dimensions:
            if (self.table[dim].astype(str) == TOTAL).any():
                raise _problem(
                    what,
                    f"dimension '{dim}' already contains a '{TOTAL}' row",
                    "give interior cells only; totals are added by disclosure control",
                )
        if not _NAME.match(self.unit):
            raise _problem(
                what, f"unit {self.unit!r} is not a simple word", "use e.g. 'people' or 'enrolments'"
            )

    @classmethod
    def from_records(
        cls,
        records: pd.DataFrame,
        dimensions: list[str] | tuple[str, ...],
        person_column: str,
        source: str,
        title: str,
        **kwargs: Any,
    ) -> FrequencyTable:
        """Count distinct people per combination of ``dimensions`` from row-level data.

        Counting distinct ``person_column`` values (not rows) is what makes the threshold a rule
        about people; categories observed anywhere are crossed so that empty cells are real zeros.
        """
        _require_columns(records, [*dimensions, person_column], f"records for '{title}'")
        counts = records.groupby(list(dimensions), observed=True)[person_column].nunique()
        levels = [sorted(records[d].dropna().unique(), key=str) for d in dimensions]
        full = pd.MultiIndex.from_product(levels, names=list(dimensions))
        table = counts.reindex(full, fill_value=0).rename("count").reset_index()
        return cls(table=table, dimensions=tuple(dimensions), source=source, title=title, **kwargs)


@dataclass(frozen=True)
class MagnitudeTable:
    """Cells of a sum or mean (e.g. total GP appointments) with the values of each contributor.

    ``contributions`` has one row per contributor (a person) per cell: the dimension columns and
    ``value_column``. It never leaves the TRE; it is what the dominance (n, k) and p% rules need.
    The released table holds, per cell, the number of contributors and the statistic.
    """

    contributions: pd.DataFrame
    dimensions: tuple[str, ...]
    value_column: str
    source: str
    title: str
    statistic: MagnitudeStatistic = "sum"
    population: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        what = f"magnitude table '{self.title}'"
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if not self.dimensions:
            raise _problem(
                what, "it has no dimension columns", "name the columns the cells are broken down by"
            )
        _require_columns(self.contributions, [*self.dimensions, self.value_column], what)
        values = pd.to_numeric(self.contributions[self.value_column], errors="coerce")
        if values.isna().any():
            raise _problem(
                what,
                f"column '{self.value_column}' must be numeric with no gaps",
                "give one numeric value per contributor",
            )
        if self.contributions[list(self.dimensions)].isna().any().any():
            raise _problem(
                what, "a dimension column has empty values", "label missing values, e.g. 'Not known'"
            )

    def cells(self) -> dict[tuple[str, ...], np.ndarray]:
        """Each cell's contributor values, keyed by its dimension values as text (sorted).

        The dominance and p% rules, the protected table and the release ledger all read the
        cells this way, so they agree on what a cell is.
        """
        df = self.contributions.copy()
        for d in self.dimensions:
            df[d] = df[d].astype(str)
        values = pd.to_numeric(df[self.value_column]).astype(float)
        return {
            tuple(k if isinstance(k, tuple) else (k,)): v.to_numpy()
            for k, v in values.groupby([df[d] for d in self.dimensions], sort=True)
        }


@dataclass(frozen=True)
class ModelResult:
    """A model's coefficient table with the number of people behind each coefficient.

    ``coefficients`` needs ``term, estimate, ci_lower, ci_upper, p_value, n_people``; extra numeric
    columns (``std_error``, ``odds_ratio``, ``relative_change``, ``event_time``, ``month``) are
    released with their row. ``kind``: ``regression`` (residual df is checked), ``event_study``
    and ``time_series`` (one row per event time or month, each with the people it rests on),
    ``estimates`` (a table of estimates such as ratios or kappas, each with its people).
    ``statistics`` holds model-level figures (AIC, pseudo R²); min/max/percentiles of individual
    values are refused there.
    """

    coefficients: pd.DataFrame
    n_obs: int
    n_people: int
    source: str
    title: str
    residual_df: float | None = None
    kind: ModelKind = "regression"
    statistics: Mapping[str, float] = field(default_factory=dict)
    population: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        what = f"model result '{self.title}'"
        _require_columns(self.coefficients, COEFFICIENT_COLUMNS, what)
        n = self.coefficients["n_people"]
        if n.isna().any() or not all(float(v).is_integer() and v >= 0 for v in n):
            raise _problem(
                what,
                "column 'n_people' must give the whole number of people behind every coefficient",
                "count the people contributing to each term (for a category, the people in it)",
            )
        if self.coefficients["term"].duplicated().any() and self.kind == "regression":
            raise _problem(what, "a term appears twice", "give one row per coefficient")
        object.__setattr__(self, "statistics", dict(self.statistics))


@dataclass(frozen=True)
class Figure:
    """A chart and the table it shows; the chart is judged by its table.

    Prefer ``render``: a function that draws the chart from the table *as it will be released*
    (after suppression and rounding) and returns PNG bytes, so the released picture can only show
    protected numbers. ``png`` alone is accepted only when protection leaves the table unchanged.
    """

    table: FrequencyTable | MagnitudeTable | ModelResult
    title: str
    render: Callable[[pd.DataFrame], bytes] | None = None
    png: bytes | None = None
    description: str = ""
    #: set by disclosure control once ``png`` has been drawn by ``render`` from the protected table
    drawn_from_protected_table: bool = False

    def __post_init__(self) -> None:
        if self.render is None and self.png is None:
            raise _problem(
                f"figure '{self.title}'",
                "it has neither a render function nor a PNG",
                "pass render=<function(table) -> PNG bytes>",
            )
        if isinstance(self.table, Figure):
            raise _problem(
                f"figure '{self.title}'", "its table is another figure", "pass the underlying table"
            )

    @property
    def source(self) -> str:
        return self.table.source


#: Columns of a note's table: the part of the analysis and why it could not be estimated.
NOTE_COLUMNS = ("part", "reason")


@dataclass(frozen=True)
class Note:
    """A plain-English statement about an analysis, such as why a part of it cannot be estimated.

    An analysis that cannot estimate something on the data at hand says so in an output of its
    own, so the reader of the released results learns *why* a table is missing instead of
    finding nothing. ``reasons`` has one row per part (``part``, ``reason``). The text is checked
    like any output: it must hold no identifiers, and a number small enough to be a count of a
    few people sends it to an IG officer. Reasons should therefore speak of areas, parameters
    and thresholds, never quote an unrounded count of people.
    """

    reasons: pd.DataFrame
    source: str
    title: str
    description: str = ""

    def __post_init__(self) -> None:
        what = f"note '{self.title}'"
        _require_columns(self.reasons, NOTE_COLUMNS, what)
        if self.reasons.empty:
            raise _problem(what, "it says nothing", "give at least one part and its reason")
        text = self.reasons[list(NOTE_COLUMNS)]
        if text.isna().any().any() or (text.astype(str).apply(lambda c: c.str.strip()) == "").any().any():
            raise _problem(what, "a part or a reason is empty", "say which part and why, in plain English")
        object.__setattr__(self, "reasons", text.astype(str).reset_index(drop=True))


DisclosureOutput = FrequencyTable | MagnitudeTable | ModelResult | Figure | Note

KINDS: dict[type, str] = {
    FrequencyTable: "frequency_table",
    MagnitudeTable: "magnitude_table",
    ModelResult: "model_result",
    Figure: "figure",
    Note: "note",
}


def kind_of(output: object) -> str:
    """The kind name of a typed output; anything else is refused (it could be row-level data)."""
    for cls, name in KINDS.items():
        if isinstance(output, cls):
            return name
    from ig_policies.errors import DisclosureBlocked

    raise DisclosureBlocked(
        f"A {type(output).__name__} cannot be requested as an output: only frequency tables, "
        "magnitude tables, model results, figures and notes can leave the TRE.",
        hint="wrap the aggregate in FrequencyTable, MagnitudeTable, ModelResult or Figure; row-level data never leaves.",
    )


# --------------------------------------------------------------------------------------------
# Saving and loading (a request is re-checked from its saved copy at release)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def save_output(output: DisclosureOutput, directory: Path) -> Path:
    """Write ``output`` under ``directory`` (``output.json`` plus Parquet/PNG files)."""
    make_zone_folder(directory)
    meta: dict[str, Any] = {"kind": kind_of(output)}
    if isinstance(output, FrequencyTable):
        write_parquet(output.table, directory / "table.parquet")
        meta.update(
            dimensions=list(output.dimensions),
            source=output.source,
            title=output.title,
            count_column=output.count_column,
            unit=output.unit,
            population=output.population,
            description=output.description,
            margins=output.margins,
        )
    elif isinstance(output, MagnitudeTable):
        write_parquet(output.contributions, directory / "contributions.parquet")
        meta.update(
            dimensions=list(output.dimensions),
            value_column=output.value_column,
            source=output.source,
            title=output.title,
            statistic=output.statistic,
            population=output.population,
            description=output.description,
        )
    elif isinstance(output, ModelResult):
        write_parquet(output.coefficients, directory / "coefficients.parquet")
        meta.update(
            n_obs=int(output.n_obs),
            n_people=int(output.n_people),
            source=output.source,
            title=output.title,
            residual_df=_jsonable(output.residual_df),
            model_kind=output.kind,
            statistics={k: _jsonable(float(v)) for k, v in output.statistics.items()},
            population=output.population,
            description=output.description,
        )
    elif isinstance(output, Note):
        write_parquet(output.reasons, directory / "reasons.parquet")
        meta.update(source=output.source, title=output.title, description=output.description)
    else:
        save_output(output.table, directory / "table")
        if output.png is not None:
            write_bytes(directory / "figure.png", output.png)
        meta.update(
            title=output.title,
            description=output.description,
            drawn_from_protected_table=output.drawn_from_protected_table,
        )
    write_json(directory / "output.json", meta)
    return directory


def load_output(directory: Path) -> DisclosureOutput:
    """Read an output saved by ``save_output``. A figure comes back without its render function;
    its protected PNG was drawn when it was requested."""
    meta = json.loads((directory / "output.json").read_text())
    kind = meta.pop("kind")
    if kind == "frequency_table":
        return FrequencyTable(table=pd.read_parquet(directory / "table.parquet"), **meta)
    if kind == "magnitude_table":
        return MagnitudeTable(contributions=pd.read_parquet(directory / "contributions.parquet"), **meta)
    if kind == "model_result":
        kind_name = meta.pop("model_kind")
        return ModelResult(
            coefficients=pd.read_parquet(directory / "coefficients.parquet"), kind=kind_name, **meta
        )
    if kind == "note":
        return Note(reasons=pd.read_parquet(directory / "reasons.parquet"), **meta)
    if kind == "figure":
        png_path = directory / "figure.png"
        table = load_output(directory / "table")
        assert not isinstance(table, Figure | Note)
        return Figure(table=table, png=png_path.read_bytes() if png_path.exists() else None, **meta)
    raise InputError(str(directory), f"unknown output kind {kind!r}", "request the output again")
