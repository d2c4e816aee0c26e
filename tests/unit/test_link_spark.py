"""Splink on the shared local Spark session gives the same model file and links as on DuckDB.

One test only: Splink on Spark pays a fixed cost per query, so this trains once on tiny data.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from ig_policies.workspace import Workspace
from linkage import splink_model
from linkage.link import MATCHED, link_tables
from linkage.link_backend import (
    LINKAGE_EXCLUDED_OPTIMISER_RULES,
    duckdb_api,
    linkage_query_settings,
    spark_api,
)
from linkage.linkage_config import LinkageConfig
from tests.unit.test_link_population import make_population, write_workspace_tables

pytestmark = pytest.mark.spark


def test_spark_and_duckdb_agree_on_model_and_links(spark, tmp_path) -> None:
    logging.getLogger("splink").setLevel(logging.ERROR)
    ws = Workspace.open(tmp_path / "ws")
    write_workspace_tables(make_population(300, 100, seed=21, errors={"swap_names": 0.05}), ws.root)
    config = LinkageConfig(u_max_pairs=1e4, max_em_iterations=5)

    on_duckdb = link_tables(duckdb_api("1GB", threads=2), ws.root, config, seed=7)
    excluded_before = spark.conf.get("spark.sql.optimizer.excludedRules", "")
    on_spark = link_tables(spark_api(spark), ws.root, config, seed=7)
    # the linkage's optimiser settings do not leak into the rest of the shared session
    assert spark.conf.get("spark.sql.optimizer.excludedRules", "") == excluded_before

    assert splink_model.model_json(on_spark.model) == splink_model.model_json(on_duckdb.model)
    assert [c.comparisons for c in on_spark.blocking_counts] == [
        c.comparisons for c in on_duckdb.blocking_counts
    ]
    assert (on_spark.links["match_status"] == MATCHED).mean() > 0.85
    # the engines may sum in a different order: equal links, weights equal to rounding error
    pd.testing.assert_frame_equal(on_spark.links, on_duckdb.links, check_exact=False, rtol=1e-9, atol=1e-9)
    assert on_spark.clerical["client_pseudonym"].tolist() == on_duckdb.clerical["client_pseudonym"].tolist()


def test_linkage_query_settings_apply_only_inside_and_keep_the_callers_rules(spark) -> None:
    key = "spark.sql.optimizer.excludedRules"
    callers = "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation"
    spark.conf.set(key, callers)
    try:
        with linkage_query_settings(spark_api(spark)):
            inside = spark.conf.get(key).split(",")
        assert callers in inside and set(LINKAGE_EXCLUDED_OPTIMISER_RULES) <= set(inside)
        assert spark.conf.get(key) == callers
    finally:
        spark.conf.unset(key)
    with linkage_query_settings(duckdb_api("1GB", threads=1)):  # nothing to tune on DuckDB
        assert spark.conf.get(key, "") == ""
