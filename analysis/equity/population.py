"""Which census population each programme's clients are compared with.

The toolkit compares a programme's clients with the out-of-work population the service is for:
"the choice of census population will depend on the aims of the service". Comparing with every
out-of-work resident aged 16+ counts retired people (economically inactive, and half of that
population is aged 65+), so every working-age group looked over-represented. A comparison
population is therefore an age range and a set of census economic-activity categories, set per
programme in configuration; the default is the working-age (16-64) population that is
unemployed or economically inactive for any reason other than retirement or study.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.equity.statistics import band_limits
from ig_policies.errors import InputError

#: Census 2021 economic-activity categories a comparison population can be made of (the
#: ``status`` values of ``area_data.load_census_population_by_group``; employed people are never
#: part of an out-of-work comparison population).
ActivityCategory = Literal[
    "unemployed",
    "inactive_sick",
    "inactive_home",
    "inactive_student",
    "inactive_retired",
    "inactive_other",
]
#: How each category is said in sentences and output descriptions.
ACTIVITY_CATEGORY_LABELS: dict[str, str] = {
    "unemployed": "unemployed",
    "inactive_sick": "economically inactive because long-term sick or disabled",
    "inactive_home": "economically inactive because looking after home or family",
    "inactive_student": "economically inactive because a student",
    "inactive_retired": "economically inactive because retired",
    "inactive_other": "economically inactive for another reason",
}
_REASONS = {
    "inactive_sick": "long-term sick or disabled",
    "inactive_home": "looking after home or family",
    "inactive_student": "student",
    "inactive_retired": "retired",
    "inactive_other": "another reason",
}
_LEFT_OUT = {
    "unemployed": "unemployed people",
    "inactive_sick": "people inactive through long-term sickness or disability",
    "inactive_home": "people looking after home or family",
    "inactive_student": "students",
    "inactive_retired": "retired people",
    "inactive_other": "people inactive for another reason",
}
#: The default categories: out of work, but neither retired nor a student.
DEFAULT_ACTIVITY: tuple[ActivityCategory, ...] = (
    "unemployed",
    "inactive_sick",
    "inactive_home",
    "inactive_other",
)


class ComparisonPopulation(BaseModel):
    """One programme's comparison population: residents aged ``min_age``-``max_age`` in ``activity``.

    The ages must fall on the census age-band edges (16, 25, 35, 50, 65); a range that cut a
    band could not be taken from the published tables without guessing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_age: int = Field(16, ge=16, le=120, description="youngest age included (census bands start at 16)")
    max_age: int = Field(64, ge=16, le=200, description="oldest age included")
    activity: tuple[ActivityCategory, ...] = Field(
        DEFAULT_ACTIVITY, min_length=1, description="census economic-activity categories included"
    )

    @model_validator(mode="after")
    def _coherent(self) -> ComparisonPopulation:
        if self.min_age > self.max_age:
            raise ValueError(f"min_age ({self.min_age}) is above max_age ({self.max_age})")
        if len(set(self.activity)) != len(self.activity):
            raise ValueError("activity lists a category twice")
        return self

    @property
    def ages(self) -> str:
        return f"{self.min_age}+" if self.max_age >= 120 else f"{self.min_age}–{self.max_age}"

    def name(self) -> str:
        """A short name for sentences: "out-of-work population aged 16–64"."""
        chosen = set(self.activity)
        if chosen == set(DEFAULT_ACTIVITY):
            return f"out-of-work population aged {self.ages}"
        if chosen == {"inactive_sick"}:
            return (
                f"population aged {self.ages} economically inactive through long-term sickness or disability"
            )
        if chosen == {"unemployed"}:
            return f"unemployed population aged {self.ages}"
        return f"comparison population aged {self.ages}"

    def definition(self) -> str:
        """Who is in, for output descriptions: "census 2021 residents aged 16–64 who are unemployed or ..."."""
        inactive = [_REASONS[c] for c in self.activity if c != "unemployed"]
        parts = (["unemployed"] if "unemployed" in self.activity else []) + (
            [f"economically inactive ({_join(inactive)})"] if inactive else []
        )
        return f"census 2021 residents aged {self.ages} who are {_join(parts)}"

    def left_out(self) -> str:
        """Who is not: "employed people, students and retired people"."""
        left = ["employed people"] + [
            _LEFT_OUT[c] for c in ACTIVITY_CATEGORY_LABELS if c not in self.activity
        ]
        return _join(left, "and")

    def narrowed_to_sick(self) -> ComparisonPopulation:
        """The same ages, inactive through long-term sickness or disability only."""
        return self.model_copy(update={"activity": ("inactive_sick",)})

    def select(self, census: pd.DataFrame, source: str = "census table", programme: str = "") -> pd.DataFrame:
        """The rows of a census table by group (``status``, ``age_band``, ``people``) in this population.

        Refuses (naming the file, the programme and the rule) when the table has no age bands but
        the range is not 16+, or when the range cuts one of the table's age bands.
        """
        whose = f"the comparison population of '{programme}'" if programme else "the comparison population"
        rows = census[census["status"].isin(self.activity)]
        if "age_band" not in census.columns:
            if self.min_age > 16 or self.max_age < 120:
                raise InputError(
                    source,
                    f"{whose} is aged {self.ages}, but the census table has no age bands",
                    hint="use the census table by age band (and economic activity), or set the age range "
                    "to min_age 16 and max_age 200",
                )
            return rows
        upper = 200 if self.max_age >= 120 else self.max_age
        keep = []
        for band in census["age_band"].astype(str).unique():
            limits = band_limits(band)
            if limits is None:
                continue
            low, high = limits
            if low >= self.min_age and high <= upper:
                keep.append(band)
            elif low <= self.max_age and high >= self.min_age:
                raise InputError(
                    source,
                    f"{whose} has the age range {self.ages}, which cuts the census age band {band}",
                    hint="set min_age and max_age of the comparison population at the census band edges "
                    "(for example 16-64, 25-64 or 50-64)",
                )
        return rows[rows["age_band"].astype(str).isin(keep)]


class ComparisonPopulations(BaseModel):
    """The comparison population of every programme: one default, and any programme's own.

    Configuration as data, e.g. ``{"default": {"min_age": 16, "max_age": 64}, "programmes":
    {"health_into_work": {"activity": ["inactive_sick"]}}}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: ComparisonPopulation = ComparisonPopulation()
    programmes: dict[str, ComparisonPopulation] = Field(default_factory=dict)

    def for_programme(self, programme: str) -> ComparisonPopulation:
        return self.programmes.get(programme, self.default)


def _join(items: list[str], word: str = "or") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


__all__ = [
    "ACTIVITY_CATEGORY_LABELS",
    "DEFAULT_ACTIVITY",
    "ActivityCategory",
    "ComparisonPopulation",
    "ComparisonPopulations",
]
