"""Equity audit: are the programmes reaching the people they are meant to serve?

``statistics`` holds the ratios, tests and standardisation; ``population`` says which census
population each programme is compared with (configuration); ``audit`` applies them to each
programme and characteristic and writes the sentences; ``outputs`` turns the audit into
disclosure-control outputs; ``stage`` is ``run_equity_audit``, the stage function. This package
re-exports the names callers use.
"""

from analysis.clients import one_row_per_person, person_ids
from analysis.equity.audit import (
    CharacteristicAudit,
    EquityAudit,
    PopulationBasis,
    audit_characteristic,
    audit_programmes,
    category_label,
    describe_ratio,
    linkage_skew,
    programme_label,
    with_disability,
)
from analysis.equity.outputs import equity_outputs
from analysis.equity.population import (
    ACTIVITY_CATEGORY_LABELS,
    DEFAULT_ACTIVITY,
    ActivityCategory,
    ComparisonPopulation,
    ComparisonPopulations,
)
from analysis.equity.stage import client_local_authorities, run_equity_audit
from analysis.equity.statistics import (
    FitTest,
    age_sex_standardised_ratios,
    goodness_of_fit,
    harmonise_age_bands,
    poisson_ci,
    representation_ratios,
)
from analysis.stage import AnalysisOutputs
from analysis.vocabulary import CHARACTERISTICS, POPULATION_BASES

__all__ = [
    "ACTIVITY_CATEGORY_LABELS",
    "CHARACTERISTICS",
    "DEFAULT_ACTIVITY",
    "POPULATION_BASES",
    "ActivityCategory",
    "AnalysisOutputs",
    "CharacteristicAudit",
    "ComparisonPopulation",
    "ComparisonPopulations",
    "EquityAudit",
    "FitTest",
    "PopulationBasis",
    "age_sex_standardised_ratios",
    "audit_characteristic",
    "audit_programmes",
    "category_label",
    "client_local_authorities",
    "describe_ratio",
    "equity_outputs",
    "goodness_of_fit",
    "harmonise_age_bands",
    "linkage_skew",
    "one_row_per_person",
    "person_ids",
    "poisson_ci",
    "programme_label",
    "representation_ratios",
    "run_equity_audit",
    "with_disability",
]
