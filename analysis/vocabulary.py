"""The project's words for what it measures and how it groups people, defined once.

The synthetic generator plants effects on these measures and age bands, the research dataset
builds its columns from them, the linkage-quality report and the analyses break results down by
them, and the outputs print their display labels. When two of those spelled a band or a measure
differently, the equity audit compared mismatched groups without any error; so every one of them
imports the names from here. This module imports nothing beyond the standard library, so the
generator and the linkage code can use it without loading the analysis stack.
"""

from __future__ import annotations

from typing import NamedTuple

#: Health-service use counted per person and month (``health_activity.measure``, panel columns).
MEASURES: tuple[str, ...] = (
    "gp_appointments",
    "ae_attendances",
    "emergency_admissions",
    "outpatient_appointments",
    "antidepressant_items",
)
#: How each measure is named in charts and tables.
MEASURE_LABELS: dict[str, str] = {
    "gp_appointments": "GP appointments",
    "ae_attendances": "A&E attendances",
    "emergency_admissions": "Emergency admissions",
    "outpatient_appointments": "Outpatient appointments",
    "antidepressant_items": "Antidepressant items",
}

#: Health conditions: QOF registers in the GP record, ``sr_``/``gp_`` flags in the research dataset.
CONDITIONS: tuple[str, ...] = (
    "depression",
    "smi",
    "epilepsy",
    "copd",
    "diabetes",
    "chd",
    "hypertension",
    "learning_disability",
    "osteoporosis",
    "asthma",
)


class AgeBand(NamedTuple):
    """An age band: its label and the whole years it covers (both ends included)."""

    label: str
    low: int
    high: int


#: Age bands (years): the 2021 census bands of the economic-activity tables, so the equity audit
#: and success model compare like with like; coarse enough to be a safe quasi-identifier in outputs.
AGE_BANDS: tuple[AgeBand, ...] = (
    AgeBand("16-24", 16, 24),
    AgeBand("25-34", 25, 34),
    AgeBand("35-49", 35, 49),
    AgeBand("50-64", 50, 64),
    AgeBand("65+", 65, 200),
)
#: The labels of every band, as the census tables give them.
CENSUS_AGE_BANDS: tuple[str, ...] = tuple(band.label for band in AGE_BANDS)
#: The bands of working age (16-64): the programmes' clients.
WORKING_AGE_BANDS: tuple[str, ...] = tuple(band.label for band in AGE_BANDS if band.high < 65)
#: What a missing or implausible value is coded as in the research dataset.
UNKNOWN = "unknown"


#: Characteristics the analyses break results down by, with the words used in sentences.
CHARACTERISTICS: dict[str, str] = {
    "age_band": "age",
    "sex": "sex",
    "ethnicity": "ethnic group",
    "imd_quintile": "area deprivation (IMD quintile)",
    "disability": "disability or long-term health condition",
}

#: The census populations a programme's clients can be compared with, as sentences say them.
POPULATION_BASES: dict[str, str] = {
    "out_of_work": "out-of-work population (unemployed or economically inactive)",
    "inactive_sick": "population economically inactive through long-term sickness or disability",
}

#: Employment outcomes of the programmes, as sentences say them.
EMPLOYMENT_OUTCOMES: dict[str, str] = {
    "job_start": "starting a job",
    "sustained_26_weeks": "staying in work for 26 weeks",
}

#: Area rates of the small-area profile, as sentences say them.
AREA_OUTCOMES: dict[str, str] = {
    "inactive_sick_rate": "rate of economic inactivity through long-term sickness or disability",
    "unemployment_rate": "unemployment rate",
}

#: Each analysis's display name, keyed by the value of the policy's ``Analysis`` enum
#: (``ig_policies.policy.Analysis``; a test checks the keys match it).
ANALYSIS_TITLES: dict[str, str] = {
    "natural_experiment": "Natural experiment: health-service use after enrolment",
    "equity_audit": "Equity audit: who the programmes reach",
    "success_factors": "Success factors: who gets and keeps a job",
    "concordance": "Concordance of self-reported and GP-recorded conditions",
    "area_profile": "Small-area profile: health and economic activity",
    "service_use": "Health-service use of clients against the comparison population",
    "area_targeting": "Area targeting: high-need areas the programmes reach least",
}

__all__ = [
    "ANALYSIS_TITLES",
    "AGE_BANDS",
    "AREA_OUTCOMES",
    "CENSUS_AGE_BANDS",
    "CHARACTERISTICS",
    "CONDITIONS",
    "EMPLOYMENT_OUTCOMES",
    "MEASURES",
    "MEASURE_LABELS",
    "POPULATION_BASES",
    "UNKNOWN",
    "WORKING_AGE_BANDS",
    "AgeBand",
]
