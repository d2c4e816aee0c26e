"""The shared Spark session is local, offline and configured as the pipeline expects."""

import pytest

pytestmark = pytest.mark.spark


def test_spark_session_is_local_and_ui_free(spark) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert spark.range(10).count() == 10


def test_python_call_sites_are_not_recorded_on_every_call(spark) -> None:
    """PySpark 4 captures the Python stack on each DataFrame and Column call for its error messages
    (several JVM round trips each); the pipeline's session turns that off, because it made building
    the stages' expressions several times slower, for nothing more than a Python line in an error."""
    from pyspark.errors.utils import is_debugging_enabled

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert not is_debugging_enabled()
