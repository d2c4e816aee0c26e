"""Every analysis the pipeline can run, in one place: its run function, its options, its order.

The policy names analyses by the ``Analysis`` enum (``ig_policies.policy``); this registry maps
each one to the function that runs it (imported only when it runs, so ``ehl --help`` stays fast),
the pydantic model of its options (the ``analyses.<name>`` section of the settings file, which the
``ehl analyse`` commands fill from their options) and its place in the approved pipeline. The
stages, the CLI and the flows read this mapping; nothing else lists the analyses or counts them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ig_policies.errors import ConfigError
from ig_policies.policy import Analysis


class AnalysisOptions(BaseModel):
    """Options of one analysis; ``keyword_arguments`` are what its run function is called with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def keyword_arguments(self) -> dict[str, Any]:
        return {}


class NaturalExperimentOptions(AnalysisOptions):
    """How the natural experiment is set up (``analyses.natural_experiment``)."""

    measures: tuple[str, ...] | None = Field(
        None, description="measures of the research panel to analyse (default: all)"
    )
    months_before: int = Field(24, ge=2, description="months of the window before enrolment")
    months_after: int = Field(24, ge=0, description="months of the window after enrolment")
    anticipation: int = Field(0, ge=0, description="months before enrolment in which use may already change")
    placebo_shift: int = Field(
        12, ge=0, description="months to move enrolment earlier for the placebo test (0: no placebo)"
    )
    event_study_comparison: Literal["not_yet_enrolled", "not_yet_or_never_enrolled"] = Field(
        "not_yet_enrolled",
        description="who the event study compares each enrolment cohort with: clients not yet "
        "enrolled, or also the never-enrolled comparison pool",
    )

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if not value:
            return None
        from analysis.vocabulary import MEASURES

        unknown = [m for m in value if m not in MEASURES]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a measure in the research panel; use one of {', '.join(MEASURES)}"
            )
        return value

    def keyword_arguments(self) -> dict[str, Any]:
        from analysis.vocabulary import MEASURES

        return {
            "outcomes": self.measures or MEASURES,
            "months_before": self.months_before,
            "months_after": self.months_after,
            "anticipation": self.anticipation,
            "placebo_shift": self.placebo_shift or None,
            "event_study_comparison": self.event_study_comparison,
        }


class EquityAuditOptions(AnalysisOptions):
    """Which census population the programmes' reach is compared with (``analyses.equity_audit``)."""

    population: Literal["out_of_work", "inactive_sick"] = Field(
        "out_of_work",
        description="out_of_work (unemployed + economically inactive) or inactive_sick (inactive "
        "through long-term sickness or disability)",
    )

    comparison: dict[str, Any] | None = Field(
        None,
        description="the comparison population per programme: default (min_age, max_age, "
        "activity: census economic-activity categories) and programmes.<name> overrides; "
        "default: ages 16-64, unemployed plus inactive other than retired and students",
    )

    @field_validator("comparison")
    @classmethod
    def _valid_comparison(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from analysis.equity.population import ComparisonPopulations

            ComparisonPopulations.model_validate(value)
        return value

    def keyword_arguments(self) -> dict[str, Any]:
        from analysis.equity.population import ComparisonPopulations

        comparison = ComparisonPopulations.model_validate(self.comparison or {})
        return {"basis": self.population, "comparison": comparison}


class SuccessFactorsOptions(AnalysisOptions):
    """The success model (``analyses.success_factors``): a model YAML and/or the outcome alone."""

    config: Path | None = Field(
        None, description="success-model YAML (outcome, covariates, reference groups ...)"
    )
    outcome: Literal["job_start", "sustained_26_weeks"] | None = Field(
        None, description="the outcome modelled (overrides the one in the config file)"
    )

    def keyword_arguments(self) -> dict[str, Any]:
        from analysis.success import SuccessConfig, load_success_config

        config = load_success_config(self.config)
        if self.outcome is not None:
            config = SuccessConfig.model_validate({**config.model_dump(), "outcome": self.outcome})
        return {"config": config}


class ServiceUseOptions(AnalysisOptions):
    """The window of health-service use before enrolment (``analyses.service_use``)."""

    months_before: int = Field(12, ge=1, description="months before enrolment whose service use is compared")

    def keyword_arguments(self) -> dict[str, Any]:
        return {"months_before": self.months_before}


@dataclass(frozen=True)
class RegisteredAnalysis:
    """One analysis: where its run function lives, its options model, and its CLI command name."""

    analysis: Analysis
    module: str
    function: str
    options: type[AnalysisOptions]
    command: str

    def run_function(self) -> Callable[..., Any]:
        """The run function, imported now (its libraries are heavy; most commands never need them)."""
        return getattr(importlib.import_module(self.module), self.function)

    def input_files(self, options: AnalysisOptions) -> list[Path]:
        """Files the options point at, whose content is part of what the analysis computes."""
        return [p for p in (getattr(options, "config", None),) if isinstance(p, Path)]


#: The analyses in the order the approved pipeline runs them (when the policy permits them).
ANALYSES: Mapping[Analysis, RegisteredAnalysis] = {
    a.analysis: a
    for a in (
        RegisteredAnalysis(
            Analysis.NATURAL_EXPERIMENT,
            "analysis.natural_experiment",
            "run_natural_experiment",
            NaturalExperimentOptions,
            "natural-experiment",
        ),
        RegisteredAnalysis(
            Analysis.EQUITY_AUDIT, "analysis.equity", "run_equity_audit", EquityAuditOptions, "equity"
        ),
        RegisteredAnalysis(
            Analysis.SUCCESS_FACTORS,
            "analysis.success",
            "run_success_factors",
            SuccessFactorsOptions,
            "success",
        ),
        RegisteredAnalysis(
            Analysis.CONCORDANCE, "analysis.concordance", "run_concordance", AnalysisOptions, "concordance"
        ),
        RegisteredAnalysis(
            Analysis.AREA_PROFILE,
            "analysis.area_profile",
            "run_area_profile",
            AnalysisOptions,
            "area-profile",
        ),
        RegisteredAnalysis(
            Analysis.SERVICE_USE,
            "analysis.service_use",
            "run_service_use",
            ServiceUseOptions,
            "service-use",
        ),
        RegisteredAnalysis(
            Analysis.AREA_TARGETING,
            "analysis.area_targeting",
            "run_area_targeting",
            AnalysisOptions,
            "area-targeting",
        ),
    )
}

PIPELINE_ORDER: tuple[Analysis, ...] = tuple(ANALYSES)


def registered(name: str | Analysis) -> RegisteredAnalysis:
    """The analysis called ``name`` (its policy name, e.g. ``equity_audit``); unknown names are refused."""
    try:
        return ANALYSES[Analysis(name)]
    except ValueError:
        raise ConfigError(
            f"'{name}' is not an analysis.",
            hint=f"analyses are: {', '.join(a.value for a in PIPELINE_ORDER)}",
        ) from None
