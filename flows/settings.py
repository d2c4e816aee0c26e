"""Runtime settings: where Spark runs, which Prefect API to use, and every option of every stage
(validation, pseudonymisation, linkage, the research dataset, each analysis).

Settings are data (YAML validated by pydantic), separate from the signed IG policy: the policy
says what is *allowed*; settings say *how* and *where* it runs. An error names the file and key.
Each ``ehl`` command's options are overrides of these keys (``Settings.with_overrides``), so
``ehl run approved --settings FILE`` can set everything a single command can, for example::

    validation: {datasets: [ways_to_work, health_demographics], datasets_dir: /etc/ehl/datasets}
    pseudonymisation: {key_version: 2}
    linkage: {backend: duckdb, config: /etc/ehl/linkage.yaml, model: /srv/approved/model.json}
    research_dataset: {months_before: 12, months_after: 24, pool_size: 20000, study_start: 2021-01}
    analyses:
      natural_experiment: {measures: [gp_appointments], anticipation: 3, placebo_shift: 0}
      equity_audit:
        population: inactive_sick
        comparison: {default: {min_age: 16, max_age: 64}, programmes: {health_into_work: {activity: [inactive_sick]}}}
      service_use: {months_before: 12}
      success_factors: {outcome: sustained_26_weeks, config: /etc/ehl/success.yaml}
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from analysis.registry import ANALYSES
from ig_policies.config_file import load_config_file, validate_config
from ig_policies.errors import ConfigError
from linkage.bloom import BloomSettings

SETTINGS_ENV = "EHL_SETTINGS"


class SettingsError(ConfigError, ValueError):
    """A settings file is unreadable or invalid; the message names the file and key (exit code 4)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint)


class SparkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str | None = Field(None, description="a Prefect server; empty = ephemeral local API")


class LinkageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["auto", "spark", "duckdb"] = "auto"
    duckdb_max_comparisons_records: int = Field(
        3_000_000,
        ge=0,
        description="'auto' uses DuckDB while left + right records stay at or below this number",
    )
    duckdb_memory_limit: str = "8GB"
    seed: int = 42
    config: Path | None = Field(
        None, description="linkage config YAML: which tables and token columns to link (default: the demo's)"
    )
    model: Path | None = Field(
        None, description="re-use this approved model JSON (e.g. a previous linked/model.json): no training"
    )


class ValidationSettings(BaseModel):
    """Which extracts the validation stage checks, and against which dataset configs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: tuple[str, ...] | None = Field(
        None, description="dataset names or kinds to validate (default: every dataset the policy permits)"
    )
    inputs: dict[str, Path] = Field(
        default_factory=dict,
        description="dataset name -> a file to validate as that dataset instead of the file its config names",
    )
    datasets_dir: Path | None = Field(
        None, description="folder of dataset configs (default: the shipped linkage/datasets/)"
    )


class ResearchDatasetSettings(BaseModel):
    """The window of the person-month panel and the size of the comparison pool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    months_before: int = Field(24, ge=1, description="months of the panel before enrolment")
    months_after: int = Field(24, ge=1, description="months of the panel after enrolment")
    pool_size: int = Field(
        50_000, ge=0, description="never-enrolled patients kept for the matched comparison"
    )
    study_start: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}(-\d{2})?$",
        description="first month of the study, YYYY-MM (default: the first month in the activity data)",
    )
    study_end: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}(-\d{2})?$",
        description="last month of the study, YYYY-MM (default: the last month in the activity data)",
    )

    @field_validator("study_start", "study_end", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else value  # YAML reads 2021-01-15 as a date


class PseudonymisationSettings(BaseModel):
    """How the pseudonymisation stage encodes identifiers beyond its fixed tokens.

    ``bloom`` holds the Bloom-filter parameters (stored length ``bits``, ``padding``, ``fold``, and
    per encoding column its ``source`` and ``hashes``; see ``linkage.bloom.BloomSettings``). They
    are recorded with the output; both sides of a linkage must be pseudonymised with the same
    ones, so change them only together with a fresh pseudonymisation of every extract.
    ``fields: {}`` writes no encodings (linkage then uses tokens only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bloom: BloomSettings = Field(default_factory=BloomSettings)
    key_version: int | None = Field(
        None,
        ge=1,
        description="key version to derive the project keys with (default: the policy's "
        "linkage.key_version); a new version re-pseudonymises everything: a key rotation",
    )


#: ``analyses.<name>``: one section per analysis of the registry, holding its options.
AnalysisSettings = create_model(
    "AnalysisSettings",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{a.value: (entry.options, Field(default_factory=entry.options)) for a, entry in ANALYSES.items()},
)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spark: SparkSettings = Field(default_factory=SparkSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    linkage: LinkageSettings = Field(default_factory=LinkageSettings)
    pseudonymisation: PseudonymisationSettings = Field(default_factory=PseudonymisationSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    research_dataset: ResearchDatasetSettings = Field(default_factory=ResearchDatasetSettings)
    analyses: AnalysisSettings = Field(default_factory=AnalysisSettings)  # type: ignore[valid-type]

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "command-line options") -> Settings:
        """These settings with ``overrides`` (nested keys, e.g. ``{"linkage": {"backend": "duckdb"}}``)
        applied and validated again; ``None`` values leave a key as it is. Errors name the key."""
        merged = _merge(self.model_dump(), overrides)
        try:
            return validate_config(
                Settings, merged, source, "the settings", hint="change the option named above"
            )
        except ConfigError as exc:
            raise SettingsError(exc.message, hint=exc.hint) from None

    def analysis_options(self, name: str) -> Any:
        """The options of analysis ``name`` (``analyses.<name>``)."""
        return getattr(self.analyses, str(name))


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged


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
