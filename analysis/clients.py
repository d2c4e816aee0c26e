"""The clients table counts enrolments; disclosure control and every finding count people.

One person may enrol more than once (in one programme or in both). The research dataset keeps
one row per enrolment and gives repeat enrolments of one person the same ``client_cluster``; the
analyses use these functions to count each person once, so a threshold of ten people is ten
people and not ten enrolments.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def one_row_per_person(clients: pd.DataFrame, by: Sequence[str] = ("programme",)) -> pd.DataFrame:
    """Keep each person's earliest enrolment within each ``by`` group.

    Duplicate enrolments of one person share a ``client_cluster``; counting them twice would
    inflate every count and make disclosure thresholds meaningless, because those thresholds are
    about people. Rows without a cluster are their own person.
    """
    df = clients.copy()
    person = df["client_cluster"] if "client_cluster" in df else pd.Series(pd.NA, index=df.index)
    df["_person"] = person.astype("string").fillna(df["client_pseudonym"].astype("string"))
    order = [*by, "_person"] + (["enrolment_date"] if "enrolment_date" in df else [])
    df = df.sort_values(order, kind="stable").drop_duplicates([*by, "_person"], keep="first")
    return df.drop(columns="_person").reset_index(drop=True)


def person_ids(clients: pd.DataFrame) -> pd.Series:
    """The identifier of the person behind each row (cluster, else the client pseudonym)."""
    if "client_cluster" in clients:
        return clients["client_cluster"].astype("string").fillna(clients["client_pseudonym"].astype("string"))
    return clients["client_pseudonym"].astype("string")


def condition_columns(clients: pd.DataFrame, prefix: str) -> list[str]:
    """The ``sr_``/``gp_`` condition flag columns present, in a stable order."""
    return sorted(c for c in clients.columns if c.startswith(prefix))


__all__ = ["condition_columns", "one_row_per_person", "person_ids"]
