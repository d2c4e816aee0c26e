"""Runtime settings: where Spark runs, which Prefect API to use, which linkage backend, and the
Bloom-filter encoding parameters of pseudonymisation.

Settings are data (YAML validated by pydantic), separate from the signed IG policy: the policy
says what is *allowed*; settings say *how* and *where* it runs. An error names the file and key.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ig_policies.config_file import load_config_file
from ig_policies.errors import ConfigError
from linkage.bloom import BloomSettings

SETTINGS_ENV = "EHL_SETTINGS"


class SettingsError(ValueError):
    """A settings file is unreadable or invalid; the message names the file and key."""


class SparkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    master: str = Field("local[2]", description="Spark master URL: local[N], spark://host:7077, ...")
    app_name: str = "ehl-linkage"
    driver_memory: str = "4g"
    executor_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    adaptive: bool = True
    broadcast_join_threshold: str = Field(
        "256m",
        description="tables up to this size are sent whole to every task instead of shuffled "
        "(spark.sql.autoBroadcastJoinThreshold); linkage joins a small client table to a large "
        "patient one, where this saves most of the shuffling. -1 turns it off",
    )
    config: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")


class PrefectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_url: str | None = Field(None, description="a Prefect server; empty = ephemeral local API")


class LinkageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["auto", "spark", "duckdb"] = "auto"
    duckdb_max_comparisons_records: int = Field(
        3_000_000,
        ge=0,
        description="'auto' uses DuckDB while left + right records stay at or below this number",
    )
    duckdb_memory_limit: str = "8GB"
    seed: int = 42


class PseudonymisationSettings(BaseModel):
    """How the pseudonymisation stage encodes identifiers beyond its fixed tokens.

    ``bloom`` holds the Bloom-filter parameters (stored length ``bits``, ``padding``, ``fold``, and
    per encoding column its ``source`` and ``hashes``; see ``linkage.bloom.BloomSettings``). They
    are recorded with the output; both sides of a linkage must be pseudonymised with the same
    ones, so change them only together with a fresh pseudonymisation of every extract.
    ``fields: {}`` writes no encodings (linkage then uses tokens only).
    """

    model_config = ConfigDict(extra="forbid")

    bloom: BloomSettings = Field(default_factory=BloomSettings)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spark: SparkSettings = Field(default_factory=SparkSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    linkage: LinkageSettings = Field(default_factory=LinkageSettings)
    pseudonymisation: PseudonymisationSettings = Field(default_factory=PseudonymisationSettings)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from ``path``, ``$EHL_SETTINGS``, or the defaults (local Spark, ephemeral Prefect)."""
    chosen = path or os.environ.get(SETTINGS_ENV)
    if not chosen:
        return Settings()
    try:
        return load_config_file(
            chosen,
            Settings,
            "the settings",
            hint="fix the key(s) named above; flows/settings.py lists the settings and their defaults",
            missing_hint=f"check the path given to --settings or in ${SETTINGS_ENV}",
        )
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
