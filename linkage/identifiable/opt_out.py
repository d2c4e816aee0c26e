"""The NHS National Data Opt-out: remove opted-out patients from every health dataset first.

A patient who has opted out must not have their confidential information used for research, so
they are removed from all health datasets before any standardisation or tokenisation, and only the
number removed is recorded. The list (``nhs_number`` column) is matched on the digits of the NHS
number; events tables without NHS numbers (conditions, activity) lose the rows of the patients
removed from the demographics table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ig_policies.errors import InputError, PolicyRefused

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

OPT_OUT_COLUMN = "nhs_number"


def _digits(col: Column) -> Column:
    from pyspark.sql import functions as F

    return F.regexp_replace(col.cast("string"), r"[\s\-]", "")


def read_opt_out_list(spark: SparkSession, path: Path) -> DataFrame:
    """The opted-out NHS numbers (digits only, distinct) as a one-column DataFrame ``_opt_out_nhs``.

    A missing list is a refusal, not an empty list: when the policy says the opt-out applies,
    processing without the list would use data of people who said no.
    """
    from pyspark.sql import functions as F

    if not path.is_file():
        raise PolicyRefused(
            "national_data_opt_out",
            f"The policy says the National Data Opt-out applies, but the opt-out list {path} does not exist.",
            hint="ask the data controller for the current opt-out list (a CSV with an nhs_number column) "
            "and put it at that path; an empty list still needs the header line",
        )
    listing = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
    if OPT_OUT_COLUMN not in listing.columns:
        raise InputError(
            str(path),
            f"the opt-out list has no '{OPT_OUT_COLUMN}' column (found: {', '.join(listing.columns) or 'none'})",
            hint="the first line must be the header 'nhs_number', one NHS number per line below it",
        )
    nhs = _digits(F.col(OPT_OUT_COLUMN))
    return listing.select(nhs.alias("_opt_out_nhs")).where(F.col("_opt_out_nhs") != "").distinct()


def remove_opted_out(health: dict[str, DataFrame], opted_out: DataFrame) -> dict[str, DataFrame]:
    """Health datasets without the opted-out patients.

    Rows are removed when their NHS number is on the list, or when their ``patient_id`` belongs to a
    patient removed from a dataset that has both columns (the demographics table). Nothing runs
    here: the caller counts the rows removed as rows read minus rows written, so the joins run
    once, in the write, rather than again for a count of each table.
    """
    from pyspark.sql import functions as F

    listed = F.broadcast(opted_out)
    removed_ids: DataFrame | None = None
    for df in health.values():
        if OPT_OUT_COLUMN in df.columns and "patient_id" in df.columns:
            ids = df.join(listed, _digits(df[OPT_OUT_COLUMN]) == listed["_opt_out_nhs"], "left_semi").select(
                F.col("patient_id").alias("_opt_out_patient")
            )
            removed_ids = ids if removed_ids is None else removed_ids.unionByName(ids)
    if removed_ids is not None:
        removed_ids = F.broadcast(removed_ids.distinct())

    kept: dict[str, DataFrame] = {}
    for name, df in health.items():
        out = df
        if OPT_OUT_COLUMN in out.columns:
            out = out.join(listed, _digits(out[OPT_OUT_COLUMN]) == listed["_opt_out_nhs"], "left_anti")
        if removed_ids is not None and "patient_id" in out.columns:
            out = out.join(removed_ids, out["patient_id"] == removed_ids["_opt_out_patient"], "left_anti")
        kept[name] = out
    return kept
