"""The researcher's panel: which column is which, checked up front, and the dense array estimators use.

A researcher brings their own person-month panel, with their own column names. ``PanelColumns``
says which column holds what (today's research-dataset names are the defaults); every estimator
takes one, and checks the panel against it *before* estimating, so a missing or ill-typed column
is a plain error naming the column (and the first bad row), never a ``KeyError`` from deep inside.

The research panel is long (one row per person-month). The estimators need, for many pairs of
months, each person's outcome at both months; a dense ``people x months`` array with NaN for months
not observed (not registered, dead, outside the window) makes those look-ups plain array indexing,
so cohort x period sums are vectorised instead of looping over people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from ig_policies.errors import ConfigError, InputError

#: Cohort given to people who never enrol: later than any month, so they are always a comparison.
NEVER_ENROLLED = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class PanelColumns:
    """Which column of the researcher's tables holds what. Defaults: the research dataset's names.

    The clients' panel (one row per person and month) needs ``person``, ``enrolment_month``
    (constant per person) and ``month``; months since enrolment are worked out from those two, so
    no event-time column is needed. The matched comparison also reads the clients' covariates
    (``age_band``, ``sex``, ``imd_quintile``, optionally ``n_conditions`` and the
    ``<condition_flag_prefix>depression``/``smi`` flags). Never-enrolled people come in tables of
    their own: a person-month table with ``never_enrolled_person``, ``month`` and the outcome, and
    (for matching) one row per person with ``never_enrolled_person``, ``year_of_birth``, ``sex``,
    ``imd_quintile`` and ``<diagnosis_prefix><condition>`` first-diagnosis months.
    """

    person: str = "client_pseudonym"
    enrolment_month: str = "enrolment_month"
    month: str = "month"
    age_band: str = "age_band"
    sex: str = "sex"
    imd_quintile: str = "imd_quintile"
    n_conditions: str = "n_baseline_conditions"
    condition_flag_prefix: str = "gp_"
    never_enrolled_person: str = "patient_pseudonym"
    year_of_birth: str = "year_of_birth"
    diagnosis_prefix: str = "dx_"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"PanelColumns.{f.name}: {value!r} is not a column name",
                    hint="give the name of the column in your panel as text, e.g. PanelColumns(person='id')",
                )
        for group in (
            ("person", "enrolment_month", "month"),
            ("never_enrolled_person", "month"),
        ):
            names = [getattr(self, g) for g in group]
            if len(set(names)) < len(names):
                raise ConfigError(
                    f"PanelColumns: {', '.join(group)} must be different columns (got {', '.join(names)})",
                    hint="each role needs a column of its own",
                )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], where: str = "columns") -> PanelColumns:
        """From configuration (e.g. a YAML ``columns:`` block): unknown keys are refused by name.

        Keys left out keep their defaults, so a researcher names only the columns that differ.
        """
        known = [f.name for f in fields(cls)]
        unknown = [str(k) for k in mapping if k not in known]
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}: not a panel column role",
                hint=f"use any of {', '.join(known)}",
            )
        return cls(**{str(k): v for k, v in mapping.items()})  # type: ignore[arg-type]


def _first_bad_row(mask: np.ndarray) -> int:
    """1-based position of the first True in ``mask`` (rows as they appear in the table)."""
    return int(np.flatnonzero(mask)[0]) + 1


def require_columns(frame: pd.DataFrame, needed: Iterable[tuple[str, str]], source: str) -> None:
    """Each ``(column, what it holds)`` must be in ``frame``; otherwise a plain error naming it."""
    for column, role in needed:
        if column not in frame.columns:
            present = ", ".join(map(str, frame.columns[:12])) + (" ..." if len(frame.columns) > 12 else "")
            raise InputError(
                source,
                f"there is no column '{column}' ({role}); the columns are: {present}",
                column=column,
                hint="name your columns with PanelColumns(...), e.g. PanelColumns(person='your_id_column')",
            )


def checked_months(
    frame: pd.DataFrame, column: str, source: str, *, allow_missing: bool = False
) -> pd.Series:
    """The column as calendar months (first of month), or a plain error naming the first bad row."""
    values = frame[column]
    try:
        months = pd.to_datetime(values, errors="coerce")
    except (TypeError, ValueError):  # e.g. mixed time zones
        months = pd.Series(pd.NaT, index=values.index)
    bad = months.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        row = _first_bad_row(bad)
        raise InputError(
            source,
            f"'{values.iloc[row - 1]}' is not a date",
            column=column,
            row=row,
            hint="give months as dates (e.g. 2021-03-01) or datetimes",
        )
    if not allow_missing and months.isna().any():
        raise InputError(
            source,
            "a month is missing",
            column=column,
            row=_first_bad_row(months.isna().to_numpy()),
            hint="every row needs its month; people who never enrolled go in never_enrolled=, "
            "not in the clients' panel",
        )
    return months


def checked_outcome(frame: pd.DataFrame, outcome: str, source: str, *, counts: bool = False) -> np.ndarray:
    """The outcome column as floats: numeric, no missing values, no infinities (counts: not negative).

    A month a person was not observed must be *left out* of the panel: an empty outcome would be
    read as neither zero nor absent, so it is refused rather than guessed.
    """
    require_columns(frame, [(outcome, "the outcome")], source)
    values = frame[outcome]
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values) or pd.api.types.is_object_dtype(values)
    ):
        raise InputError(
            source,
            f"the outcome must be a number per person-month, but the column holds {values.dtype} values",
            column=outcome,
            hint="choose a numeric outcome column (e.g. a monthly count)",
        )
    numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    not_number = np.isnan(numbers) & values.notna().to_numpy()
    if not_number.any():
        row = _first_bad_row(not_number)
        raise InputError(
            source,
            f"the outcome '{values.iloc[row - 1]}' is not a number",
            column=outcome,
            row=row,
            hint="the outcome must be numeric in every row",
        )
    problems = (
        (np.isnan(numbers), "the outcome is missing", "leave months that were not observed out of the panel"),
        (np.isinf(numbers), "the outcome is infinite", "check how the outcome was computed"),
    )
    if counts:
        problems += ((numbers < 0, "a count is negative", "this design models counts (0, 1, 2, ...)"),)
    for mask, problem, hint in problems:
        if mask.any():
            raise InputError(source, problem, column=outcome, row=_first_bad_row(mask), hint=hint)
    return numbers


def _check_one_row_per_person_month(codes: np.ndarray, months: np.ndarray, source: str, column: str) -> None:
    """``codes``: person codes (``pd.factorize``); ``months``: calendar month indices."""
    key = codes.astype(np.int64) * (int(months.max() - months.min()) + 1) + (months - months.min())
    order = np.argsort(key, kind="stable")
    repeated = np.zeros(len(key), dtype=bool)
    repeated[order[1:]] = np.diff(key[order]) == 0
    if repeated.any():
        dup = repeated
        raise InputError(
            source,
            "the same person and month appear twice",
            column=column,
            row=_first_bad_row(dup),
            hint="give one row per person and month (add up counts within a month first)",
        )


@dataclass(frozen=True)
class ClientsPanel:
    """The clients' panel after checking: person codes, calendar month and enrolment month indices."""

    codes: np.ndarray  # per row: the person's position in ``people``
    people: np.ndarray  # person ids, in order of first appearance
    month: np.ndarray  # calendar month index per row
    enrolment: np.ndarray  # calendar month index of the person's enrolment, per row

    @property
    def event_time(self) -> np.ndarray:
        """Months since enrolment (0 = the enrolment month)."""
        return self.month - self.enrolment


def check_clients_panel(frame: pd.DataFrame, columns: PanelColumns, source: str) -> ClientsPanel:
    """Check the clients' panel against ``columns``: present, dates, one enrolment month per person."""
    require_columns(
        frame,
        [
            (columns.person, "the person"),
            (columns.month, "the calendar month"),
            (columns.enrolment_month, "the enrolment month"),
        ],
        source,
    )
    if len(frame) == 0:
        raise InputError(source, "the panel has no rows", hint="check the panel was built for this study")
    if frame[columns.person].isna().any():
        raise InputError(
            source,
            "a person id is missing",
            column=columns.person,
            row=_first_bad_row(frame[columns.person].isna().to_numpy()),
        )
    months = checked_months(frame, columns.month, source)
    enrolment = checked_months(frame, columns.enrolment_month, source, allow_missing=True)
    if enrolment.isna().any():
        raise InputError(
            source,
            "the enrolment month is missing",
            column=columns.enrolment_month,
            row=_first_bad_row(enrolment.isna().to_numpy()),
            hint="people who never enrolled are not clients: pass their months as never_enrolled= "
            "(the event study then uses them as a comparison in every month)",
        )
    codes, people = pd.factorize(frame[columns.person], sort=False)
    m_idx = month_index(months)
    _check_one_row_per_person_month(codes, m_idx, source, columns.month)
    e_idx = month_index(enrolment)
    first = np.empty(codes.max() + 1, dtype=np.int64)
    first[codes[::-1]] = e_idx[::-1]  # each person's enrolment month on their first row
    differs = first[codes] != e_idx
    if differs.any():
        raise InputError(
            source,
            "a person has more than one enrolment month",
            column=columns.enrolment_month,
            row=_first_bad_row(differs),
            hint="give each person one enrolment month (e.g. their first enrolment)",
        )
    return ClientsPanel(codes=codes, people=np.asarray(people), month=m_idx, enrolment=e_idx)


def check_never_enrolled(frame: pd.DataFrame, columns: PanelColumns, source: str) -> pd.Series:
    """Check never-enrolled people's person-month table; return its months (first of month)."""
    require_columns(
        frame,
        [(columns.never_enrolled_person, "the never-enrolled person"), (columns.month, "the calendar month")],
        source,
    )
    if columns.enrolment_month in frame.columns and frame[columns.enrolment_month].notna().any():
        raise InputError(
            source,
            "people in the never-enrolled table have an enrolment month",
            column=columns.enrolment_month,
            row=_first_bad_row(frame[columns.enrolment_month].notna().to_numpy()),
            hint="people who enrolled belong in the clients' panel",
        )
    months = checked_months(frame, columns.month, source)
    if frame[columns.never_enrolled_person].isna().any():
        raise InputError(
            source,
            "a person id is missing",
            column=columns.never_enrolled_person,
            row=_first_bad_row(frame[columns.never_enrolled_person].isna().to_numpy()),
        )
    codes, _ = pd.factorize(frame[columns.never_enrolled_person], sort=False)
    _check_one_row_per_person_month(codes, month_index(months), source, columns.month)
    return months


def month_index(months: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Calendar month as an integer (months since year 0), so month arithmetic is integer arithmetic."""
    d = pd.DatetimeIndex(pd.to_datetime(months))
    return (d.year.to_numpy(dtype=np.int64) * 12 + d.month.to_numpy(dtype=np.int64) - 1).astype(np.int64)


def index_to_month(index: np.ndarray | int) -> pd.DatetimeIndex:
    """Inverse of ``month_index``: first day of each month."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    return pd.DatetimeIndex((idx - 1970 * 12).astype("datetime64[M]").astype("datetime64[ns]"))


@dataclass(frozen=True)
class DensePanel:
    """One outcome as a ``people x months`` float array; NaN marks a month that was not observed.

    ``cohort`` is each person's enrolment month as a column index (it may lie outside ``0..T-1``
    when a person's enrolment falls outside the observed months; ``NEVER_ENROLLED`` for people who
    never enrolled). ``t0`` is the calendar month index of column 0. ``outcome`` names the column
    the array was built from (``None`` only for arrays built by hand).
    """

    person: np.ndarray
    cohort: np.ndarray
    y: np.ndarray
    t0: int
    outcome: str | None = None

    @property
    def n_people(self) -> int:
        return len(self.person)

    @property
    def n_months(self) -> int:
        return self.y.shape[1]

    @property
    def never_enrolled(self) -> np.ndarray:
        """True for people who never enrolled (comparison in every month)."""
        return self.cohort >= NEVER_ENROLLED

    @classmethod
    def from_long(
        cls,
        panel: pd.DataFrame,
        outcome: str,
        columns: PanelColumns | None = None,
        *,
        never_enrolled: pd.DataFrame | None = None,
        source: str = "panel",
    ) -> DensePanel:
        """Check a long panel and pivot it to a dense array (people in order of first appearance).

        ``never_enrolled``: person-month rows of people who never enrolled (columns
        ``columns.never_enrolled_person``, ``columns.month`` and the outcome). They are added after
        the clients with no enrolment month, so an estimator using them treats them as a comparison
        in every month. Without it, only clients are in the array.
        """
        columns = columns or PanelColumns()
        clients = check_clients_panel(panel, columns, source)
        y_clients = checked_outcome(panel, outcome, source)
        codes, people = clients.codes, clients.people
        months, values, cohort_rows = clients.month, y_clients, clients.enrolment
        if never_enrolled is not None:
            n_source = f"{source} (never-enrolled people)"
            n_months = month_index(check_never_enrolled(never_enrolled, columns, n_source))
            n_codes, n_people = pd.factorize(never_enrolled[columns.never_enrolled_person], sort=False)
            shared = np.intersect1d(people.astype(str), np.asarray(n_people).astype(str))
            if len(shared):
                raise InputError(
                    n_source,
                    f"{len(shared)} people are both clients and never enrolled",
                    column=columns.never_enrolled_person,
                    hint="a person is either in the clients' panel or in the never-enrolled table",
                )
            codes = np.concatenate([codes, n_codes + len(people)])
            people = np.concatenate([people.astype(object), np.asarray(n_people, dtype=object)])
            months = np.concatenate([months, n_months])
            values = np.concatenate([values, checked_outcome(never_enrolled, outcome, n_source)])
            cohort_rows = np.concatenate(
                [cohort_rows, np.full(len(n_months), NEVER_ENROLLED, dtype=np.int64)]
            )
        t0 = int(months.min())
        cols = months - t0
        y = np.full((len(people), int(cols.max()) + 1), np.nan)
        y[codes, cols] = values
        cohort = np.zeros(len(people), dtype=np.int64)
        cohort[codes] = np.where(cohort_rows >= NEVER_ENROLLED, NEVER_ENROLLED, cohort_rows - t0)
        return cls(person=people, cohort=cohort, y=y, t0=t0, outcome=outcome)

    def column(self, calendar_index: int | np.ndarray) -> np.ndarray:
        """Column index of a calendar month index."""
        return np.asarray(calendar_index) - self.t0
