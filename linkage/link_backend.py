"""Pick the Splink backend for a linkage run and build its database API.

Splink on local Spark pays a fixed cost per query and is slower per scored pair: 100k clients
against 1M patients (16.7M pairs) on 2 cores took 26-32 s on DuckDB (5 GB) and 378 s on local
Spark (``benchmarks/link.py``). So ``auto`` uses DuckDB while both tables together fit
comfortably on one machine (``linkage.duckdb_max_comparisons_records`` in settings, 3 million
records by default) and Spark beyond that, where the work can spread over a cluster. The caller
owns the Spark session: this module only wraps the one it is given, so the same code runs on a
laptop and on a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ig_policies.errors import ConfigError
from ig_policies.workspace import private_scratch

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
    spill = temp_dir or private_scratch("ehl-duckdb")  # one per account, 0700
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


#: Spark's optimiser pushes the prediction threshold (a filter on the sum of every comparison's
#: weight) down into the join of the candidate pairs with their records, where the whole weight
#: expression is evaluated a second time for every pair. Keeping the filter after the scoring
#: measured 1.8x faster for the prediction query (1M pairs, local[2]); the blocking joins and
#: table scans are unaffected because their filters already sit where they apply.
LINKAGE_EXCLUDED_OPTIMISER_RULES = ("org.apache.spark.sql.catalyst.optimizer.PushDownPredicates",)


@contextmanager
def linkage_query_settings(db_api: Any) -> Iterator[None]:
    """Tune the caller's Spark session for Splink's queries for the duration of a linkage run.

    The session may be shared with other stages, so the previous settings are restored on exit.
    A no-op on DuckDB.
    """
    from linkage.splink_model import sql_dialect

    spark = getattr(db_api, "spark", None)
    if spark is None or sql_dialect(db_api) != "spark":
        yield
        return
    key = "spark.sql.optimizer.excludedRules"
    before = spark.conf.get(key, "")
    rules = [r for r in before.split(",") if r.strip()]
    rules += [r for r in LINKAGE_EXCLUDED_OPTIMISER_RULES if r not in rules]
    spark.conf.set(key, ",".join(rules))
    try:
        yield
    finally:
        if before:
            spark.conf.set(key, before)
        else:
            spark.conf.unset(key)


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
