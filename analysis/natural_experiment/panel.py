"""Person x calendar-month arrays: the shape every estimator here works on.

The research panel is long (one row per person-month). The estimators need, for many pairs of
months, each person's outcome at both months; a dense ``people x months`` array with NaN for months
not observed (not registered, dead, outside the window) makes those look-ups plain array indexing,
so cohort x period sums are vectorised instead of looping over people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


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
    when a person's enrolment falls outside the observed months). ``t0`` is the calendar month index
    of column 0.
    """

    person: np.ndarray
    cohort: np.ndarray
    y: np.ndarray
    t0: int

    @property
    def n_people(self) -> int:
        return len(self.person)

    @property
    def n_months(self) -> int:
        return self.y.shape[1]

    @classmethod
    def from_long(
        cls,
        panel: pd.DataFrame,
        outcome: str,
        person: str = "client_pseudonym",
        month: str = "month",
        enrolment: str | None = "enrolment_month",
    ) -> DensePanel:
        """Pivot a long panel to a dense array (rows in order of first appearance of each person)."""
        codes, uniques = pd.factorize(panel[person], sort=False)
        m = month_index(panel[month])
        t0 = int(m.min())
        cols = m - t0
        y = np.full((len(uniques), int(cols.max()) + 1), np.nan)
        y[codes, cols] = panel[outcome].to_numpy(dtype=float)
        if enrolment is not None:
            e = month_index(panel[enrolment]) - t0
            cohort = np.zeros(len(uniques), dtype=np.int64)
            cohort[codes] = e
        else:
            cohort = np.full(len(uniques), np.iinfo(np.int64).max // 4, dtype=np.int64)
        return cls(person=np.asarray(uniques), cohort=cohort, y=y, t0=t0)

    def column(self, calendar_index: int | np.ndarray) -> np.ndarray:
        """Column index of a calendar month index."""
        return np.asarray(calendar_index) - self.t0
