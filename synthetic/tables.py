"""Byte-reproducible Parquet and CSV writing for the generator.

Same seed must give byte-identical files (tests and the audit log compare content hashes), so the
Parquet writer options are pinned here, dates are written as real ``date`` columns (not timestamps)
and no file carries a creation time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ig_policies.workspace import atomic_path

PARQUET_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
ROW_GROUP_ROWS = 1 << 20


def to_arrow_column(values: np.ndarray | pd.Series) -> pa.Array:
    """numpy/pandas values -> Arrow: datetime64 -> date32, object strings with None -> string."""
    if (
        isinstance(values, pd.Series)
        and pd.api.types.is_string_dtype(values.dtype)
        and values.dtype != object
    ):
        # pandas' Arrow-backed strings convert without building a Python object per value
        return pa.array(values, from_pandas=True).cast(pa.string())
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        days = arr.astype("datetime64[D]")
        mask = np.isnat(days)
        ints = np.where(mask, 0, days.astype(np.int64)).astype(np.int32)
        return pa.array(ints, type=pa.int32(), mask=mask).cast(pa.date32())
    if arr.dtype == object:
        return pa.array(arr, type=pa.string(), from_pandas=True)
    if arr.dtype == bool:
        return pa.array(arr, type=pa.bool_())
    if np.issubdtype(arr.dtype, np.integer):
        return pa.array(arr.astype(np.int64), type=pa.int64())
    if np.issubdtype(arr.dtype, np.floating):
        return pa.array(arr.astype(np.float64), type=pa.float64())
    if arr.dtype.kind in "UST":  # numpy / pandas fixed-width or string dtypes
        return pa.array(arr.astype(object), type=pa.string(), from_pandas=True)
    raise TypeError(f"no Arrow mapping for dtype {arr.dtype}")


def to_arrow(columns: Mapping[str, np.ndarray | pd.Series] | pd.DataFrame) -> pa.Table:
    if isinstance(columns, pd.DataFrame):
        columns = {c: columns[c] for c in columns.columns}
    return pa.table({name: to_arrow_column(v) for name, v in columns.items()})


def write_table(
    table: pa.Table | pd.DataFrame | Mapping[str, np.ndarray], path: str | os.PathLike[str]
) -> Path:
    """Write one Parquet file atomically with the pinned options."""
    if not isinstance(table, pa.Table):
        table = to_arrow(table)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
    return Path(path)


def write_delimited(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    line_end: str = "\n",
) -> Path:
    """Write a text table atomically; empty strings and missing values both appear as empty fields."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep=sep, index=False, encoding=encoding, lineterminator=line_end, na_rep="")
    return Path(path)
