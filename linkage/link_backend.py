"""Pick the Splink backend for a linkage run and build its database API.

Splink on local Spark pays a fixed cost per query (tens of seconds of training on a 5k x 5k
benchmark where DuckDB takes two), so ``auto`` uses DuckDB while both tables together fit
comfortably on one machine (``linkage.duckdb_max_comparisons_records`` in settings, 3 million
records by default) and Spark beyond that. The caller owns the Spark session: this module only
wraps the one it is given, so the same code runs on a laptop and on a cluster.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from ig_policies.errors import ConfigError

Backend = Literal["spark", "duckdb"]


def choose_backend(requested: str, total_records: int, duckdb_max_records: int) -> Backend:
    """``spark`` or ``duckdb``: the requested one, or for ``auto`` the one that fits the data."""
    if requested in ("spark", "duckdb"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ConfigError(
            f"linkage.backend is '{requested}'; it must be auto, spark or duckdb",
            hint="fix linkage.backend in the settings file",
        )
    return "duckdb" if total_records <= duckdb_max_records else "spark"


def duckdb_api(memory_limit: str = "8GB", threads: int | None = None, temp_dir: Path | None = None) -> Any:
    """A DuckDB database API with a memory cap and a spill directory (tables may exceed memory)."""
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 2)}")
    spill = temp_dir or Path(tempfile.gettempdir()) / "ehl-duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    con.execute("SET preserve_insertion_order = false")
    return DuckDBAPI(connection=con)


def spark_api(spark: Any, *, repartition_after_blocking: bool = True) -> Any:
    """A Spark database API on the caller's session.

    Lineage is broken by Splink's default parquet checkpointing (the session must have a
    checkpoint directory, as ``flows.spark_session.build_spark_session`` sets); measured faster
    than ``persist`` here. Repartitioning after blocking spreads the scored pairs evenly over the
    session's shuffle partitions.
    """
    from splink import SparkAPI

    partitions = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
    return SparkAPI(
        spark_session=spark,
        repartition_after_blocking=repartition_after_blocking,
        num_partitions_on_repartition=partitions,
    )


def build_db_api(backend: Backend, *, spark: Any = None, duckdb_memory_limit: str = "8GB") -> Any:
    """The database API for ``backend``; ``spark`` is required (and only used) for Spark."""
    if backend == "spark":
        if spark is None:
            raise ConfigError(
                "the Spark backend needs a Spark session", hint="build one with flows.spark_session"
            )
        return spark_api(spark)
    return duckdb_api(duckdb_memory_limit)


def db_api_for_run(
    root: Path,
    config: Any,
    requested: str,
    duckdb_max_records: int,
    *,
    spark_factory: Any = None,
    duckdb_memory_limit: str = "8GB",
) -> tuple[Backend, Any]:
    """Choose the backend for the two tables of ``config`` under ``root`` and build its API.

    ``spark_factory`` is called (with no arguments) only when Spark is chosen, so a DuckDB run
    never starts a JVM. This is what ``ehl link`` and the pipeline flow call.
    """
    from linkage.splink_model import table_rows

    records = table_rows(root, config.left) + table_rows(root, config.right)
    backend = choose_backend(requested, records, duckdb_max_records)
    spark = None
    if backend == "spark":
        if spark_factory is None:
            raise ConfigError("the Spark backend was chosen but no Spark session can be built here")
        spark = spark_factory()
    return backend, build_db_api(backend, spark=spark, duckdb_memory_limit=duckdb_memory_limit)
