"""The shared Spark session is local, offline and configured as the pipeline expects."""

import pytest

pytestmark = pytest.mark.spark


def test_spark_session_is_local_and_ui_free(spark) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert spark.range(10).count() == 10
