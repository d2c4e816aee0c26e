"""Switch off every library's telemetry before any of them is imported.

Prefect (usage analytics, server heartbeat), Great Expectations (usage statistics) and Spark's UI
would otherwise reach out or open ports. Inside a TRE nothing may reach the internet, so these
defaults are applied by the ``flows`` package itself, not left to each user's shell.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

OFFLINE_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_TO_API_ENABLED": "true",
    "PREFECT_UI_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "SPARK_LOCAL_IP": "127.0.0.1",
    "PYARROW_IGNORE_TIMEZONE": "1",
}


def apply_offline_defaults() -> None:
    """Set the offline defaults unless the operator has chosen a value explicitly."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # PySpark warns on every pandas conversion that it does not "fully support" pandas 3; the
    # conversions the pipeline uses are covered by its tests, so the warning is only noise.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
