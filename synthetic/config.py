"""Every rate, effect and odds ratio the generator plants, as one validated configuration.

The generator exists to test the pipeline against a known truth, so nothing it plants may be a
magic number hidden in code: each value lives here, has a realistic default, can be overridden from
YAML or the command line, and is copied verbatim into ``truth/planted.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.vocabulary import CENSUS_AGE_BANDS, CONDITIONS, MEASURES
from analysis.vocabulary import WORKING_AGE_BANDS as AGE_BANDS  # clients are of working age
from ig_policies.config_file import load_config_file

ECONOMIC_STATUSES: tuple[str, ...] = ("employed", "unemployed", "inactive_sick", "inactive_other")
ETHNICITIES: tuple[str, ...] = ("Asian", "Black", "Mixed", "White", "Other")
PROGRAMMES: tuple[str, ...] = ("ways_to_work", "health_into_work")

Rate = float  # a probability in [0, 1]; fields using it are validated by _rate()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rate(default: float, description: str) -> Any:
    return Field(default, ge=0.0, le=1.0, description=description)


class IdentifierErrors(_Strict):
    """Per-record probabilities of the identifier errors real employment-support extracts carry."""

    forename_typo: Rate = _rate(0.03, "one-character typo in the forename")
    surname_typo: Rate = _rate(0.03, "one-character typo in the surname")
    nickname: Rate = _rate(0.05, "forename recorded as a nickname (among records whose forename has one)")
    name_swap: Rate = _rate(0.01, "forename and surname swapped")
    accent_dropped: Rate = _rate(0.5, "accented letters written plain (among records whose name has accents)")
    dob_day_month_transposed: Rate = _rate(
        0.015, "day and month of birth transposed (among records where that gives another valid date)"
    )
    old_postcode: Rate = _rate(0.06, "postcode from before the person's last move")
    postcode_unformatted: Rate = _rate(0.10, "postcode written lower-case and/or without its space")
    nhs_number_present: Rate = _rate(0.15, "NHS number recorded at all")
    nhs_number_mistyped: Rate = _rate(0.05, "NHS number mistyped (among records that have one)")
    duplicate_enrolment: Rate = _rate(
        0.03, "the same person enrolled a second time under a new client reference"
    )


class RowDefects(_Strict):
    """Per-row probabilities of defects that validation must quarantine (not fix)."""

    missing_client_ref: Rate = _rate(0.001, "client reference empty")
    enrolment_date_out_of_window: Rate = _rate(0.001, "enrolment date in the future or outside 2021-2023")
    unknown_sex_code: Rate = _rate(0.001, "sex code not one of the provider's codes")
    duplicate_client_ref: Rate = _rate(0.001, "client reference repeated from another row")
    implausible_dob: Rate = _rate(0.001, "date of birth impossible (no such day, age over 110 or under 16)")


class Geography(_Strict):
    """How the six local authorities are scaled down for runs smaller than the real region."""

    people_per_lsoa: int = Field(1600, ge=100, description="target residents per LSOA (real LSOAs: ~1,500)")
    min_lsoas_per_la: int = Field(5, ge=1, description="fewest LSOAs per local authority in small runs")
    people_per_practice: int = Field(7500, ge=500, description="target registered list size per GP practice")
    lsoa_condition_sd: float = Field(
        0.25, ge=0.0, description="SD of the per-LSOA random effect on each condition's log prevalence"
    )


class Registration(_Strict):
    unregistered: Rate = _rate(
        0.01, "residents not registered with a practice in the region (no health record)"
    )
    missing_nhs_number: Rate = _rate(0.002, "health records without an NHS number")
    late_registration: Rate = _rate(0.06, "patients who register during the study window")
    left_region: Rate = _rate(0.05, "patients whose registration ends during the window (moved away)")
    mortality_scale: float = Field(1.0, ge=0.0, description="multiplier of the Gompertz death rates")
    opt_out: Rate = _rate(0.02, "patients on the National Data Opt-out list")


class EconomicActivity(_Strict):
    """Area-level planted model of economic status at census day (2021-03-21).

    For each LSOA, ``log(rate) = LA intercept + sum_c elasticity_c * log(prevalence_c)``, where the
    rate is the share of residents aged 16+ in the status and the prevalence of condition c is the
    share of all residents with c recorded on or before 2023-03-31 (the QOF year end). People with
    the condition are more likely to be the ones in the status (``individual_log_or``), but the
    LSOA expectation is exactly the planted formula.
    """

    elasticities_inactive_sick: dict[str, float] = Field(
        default_factory=lambda: {
            "epilepsy": 0.6,
            "smi": 0.5,
            "depression": 0.3,
            "copd": 0.25,
            "learning_disability": 0.2,
        }
    )
    elasticities_unemployed: dict[str, float] = Field(
        default_factory=lambda: {"depression": 0.25, "smi": 0.3, "epilepsy": 0.15}
    )
    mean_rate_inactive_sick: Rate = _rate(
        0.065, "share of residents 16+ inactive, long-term sick or disabled"
    )
    mean_rate_unemployed: Rate = _rate(0.035, "share of residents 16+ unemployed")
    area_noise_sd: float = Field(0.05, ge=0.0, description="SD of unexplained log-rate noise per LSOA")
    individual_log_or: dict[str, float] = Field(
        default_factory=lambda: {
            "depression": 0.8,
            "smi": 1.6,
            "epilepsy": 1.2,
            "copd": 0.9,
            "learning_disability": 1.4,
            "chd": 0.5,
            "diabetes": 0.3,
        }
    )


class Disability(_Strict):
    """Census 2021 disability on census day ("Disabled under the Equality Act" or not).

    ``logit P(disabled) = intercept + log OR(age band) + log OR(economic status) + sum_c log OR_c *
    [condition c diagnosed by census day]``. The census asks whether a long-term condition limits
    day-to-day activities, so the ten recorded conditions raise the odds (learning disability and
    SMI most), as does being inactive through long-term sickness; the intercept (an employed
    16-24-year-old with none of the ten conditions) stands for every other cause. Children use
    the 16-24 odds ratio; the census tables the audit uses cover residents 16+ only.
    """

    intercept: float = Field(-2.75, description="log odds of disability in the reference group")
    or_age_band: dict[str, float] = Field(
        default_factory=lambda: {"16-24": 1.0, "25-34": 1.15, "35-49": 1.5, "50-64": 2.2, "65+": 3.0}
    )
    or_economic_status: dict[str, float] = Field(
        default_factory=lambda: {
            "employed": 1.0,
            "unemployed": 1.8,
            "inactive_sick": 30.0,
            "inactive_other": 1.6,
        }
    )
    or_condition: dict[str, float] = Field(
        default_factory=lambda: {
            "depression": 3.0,
            "smi": 8.0,
            "epilepsy": 4.0,
            "copd": 4.0,
            "diabetes": 1.8,
            "chd": 3.0,
            "hypertension": 1.3,
            "learning_disability": 20.0,
            "osteoporosis": 2.5,
            "asthma": 1.5,
        }
    )


class Selection(_Strict):
    """Who enrols in employment support: logistic with planted odds ratios (reference groups OR 1)."""

    rate: Rate = _rate(0.09, "share of eligible residents (16-64, alive) who enrol")
    or_age_band: dict[str, float] = Field(
        default_factory=lambda: {"16-24": 1.4, "25-34": 1.0, "35-49": 0.85, "50-64": 0.6}
    )
    or_female: float = 0.75
    or_ethnicity: dict[str, float] = Field(
        default_factory=lambda: {"White": 1.0, "Asian": 0.55, "Black": 0.8, "Mixed": 1.1, "Other": 0.65}
    )
    or_imd_quintile: dict[str, float] = Field(
        default_factory=lambda: {"1": 1.8, "2": 1.4, "3": 1.0, "4": 0.8, "5": 0.6}
    )
    or_condition: dict[str, float] = Field(
        default_factory=lambda: {"depression": 1.6, "smi": 1.3, "learning_disability": 1.5, "epilepsy": 1.2}
    )
    or_economic_status: dict[str, float] = Field(
        default_factory=lambda: {
            "employed": 0.25,
            "unemployed": 5.0,
            "inactive_sick": 3.0,
            "inactive_other": 1.0,
        }
    )
    health_into_work_share: Rate = _rate(
        0.3, "share of clients on Health into Work when they have no condition"
    )
    health_into_work_share_with_condition: Rate = _rate(0.55, "... when they have a recorded condition")


class SelfReport(_Strict):
    """Agreement of self-reported conditions with the GP record before enrolment."""

    sensitivity: dict[str, float] = Field(
        default_factory=lambda: {
            "depression": 0.7,
            "smi": 0.6,
            "epilepsy": 0.9,
            "copd": 0.75,
            "diabetes": 0.9,
            "chd": 0.8,
            "hypertension": 0.55,
            "learning_disability": 0.5,
            "osteoporosis": 0.6,
            "asthma": 0.8,
        }
    )
    ppv: dict[str, float] = Field(
        default_factory=lambda: {
            "depression": 0.7,
            "smi": 0.5,
            "epilepsy": 0.85,
            "copd": 0.7,
            "diabetes": 0.9,
            "chd": 0.8,
            "hypertension": 0.75,
            "learning_disability": 0.6,
            "osteoporosis": 0.7,
            "asthma": 0.75,
        }
    )


class Outcomes(_Strict):
    """Job start and 26-week sustainment: logistic models with planted odds ratios.

    Covariates are what the research dataset holds: age band, sex, ethnicity, IMD quintile,
    conditions recorded by the GP before enrolment, programme.
    """

    job_start_rate: Rate = _rate(0.32, "expected share of enrolments with a job start")
    sustained_rate: Rate = _rate(0.55, "expected share of job starts sustained 26 weeks")
    or_age_band: dict[str, float] = Field(
        default_factory=lambda: {"16-24": 1.2, "25-34": 1.0, "35-49": 0.9, "50-64": 0.6}
    )
    or_female: float = 1.0
    or_ethnicity: dict[str, float] = Field(
        default_factory=lambda: {"White": 1.0, "Asian": 0.8, "Black": 0.7, "Mixed": 1.0, "Other": 0.85}
    )
    or_imd_quintile: dict[str, float] = Field(
        default_factory=lambda: {"1": 0.6, "2": 0.75, "3": 1.0, "4": 1.1, "5": 1.25}
    )
    or_condition: dict[str, float] = Field(
        default_factory=lambda: {
            "depression": 0.7,
            "smi": 0.45,
            "epilepsy": 0.75,
            "learning_disability": 0.55,
            "copd": 0.8,
        }
    )
    or_programme: dict[str, float] = Field(
        default_factory=lambda: {"ways_to_work": 1.0, "health_into_work": 1.3}
    )
    sustained_or_condition: dict[str, float] = Field(default_factory=lambda: {"depression": 0.75, "smi": 0.6})
    sustained_or_programme: dict[str, float] = Field(
        default_factory=lambda: {"ways_to_work": 1.0, "health_into_work": 1.2}
    )
    mean_days_to_job: float = Field(120.0, gt=0, description="mean days from enrolment to job start")


class HealthEffect(_Strict):
    """Planted effect of enrolment on health-service use, from the enrolment month on (no pre-trend).

    Values are relative changes of the monthly rate (-0.08 = 8% fewer). ``enabled: false`` plants
    no effect at all (the null scenario).
    """

    enabled: bool = True
    relative_change: dict[str, float] = Field(
        default_factory=lambda: {
            "gp_appointments": -0.08,
            "ae_attendances": -0.12,
            "emergency_admissions": 0.0,
            "outpatient_appointments": 0.0,
            "antidepressant_items": -0.05,
        }
    )


class Activity(_Strict):
    """Monthly health-service use: Poisson rates with gamma frailty (negative binomial marginals)."""

    base_monthly_rate: dict[str, float] = Field(
        default_factory=lambda: {
            "gp_appointments": 0.30,
            "ae_attendances": 0.025,
            "emergency_admissions": 0.007,
            "outpatient_appointments": 0.09,
            "antidepressant_items": 0.003,
        }
    )
    frailty_dispersion: float = Field(0.5, ge=0.0, description="variance of the person-level gamma frailty")
    deprivation_log_rr_per_decile: dict[str, float] = Field(
        default_factory=lambda: {
            "gp_appointments": 0.02,
            "ae_attendances": 0.06,
            "emergency_admissions": 0.05,
            "outpatient_appointments": 0.01,
            "antidepressant_items": 0.03,
        }
    )
    covid_dip: bool = Field(True, description="fewer contacts in spring 2020 (a shock common to everyone)")


class UnderServed(_Strict):
    """A few wards with high need and low reach, for area targeting to find (``synthetic.targeting``)."""

    wards: int = Field(3, ge=0, description="how many wards to plant (in different local authorities)")
    condition_log_boost: float = Field(
        0.6, ge=0.0, description="added to the log prevalence of each boosted condition in those wards"
    )
    conditions: list[str] = Field(
        default_factory=list,
        description="conditions to boost (empty: those with an elasticity for inactivity through sickness)",
    )
    enrolment_odds_ratio: float = Field(
        0.3, gt=0.0, description="odds ratio of enrolling for their residents"
    )


class SynthConfig(_Strict):
    """All knobs of the synthetic city region. Defaults are the demo's realistic values."""

    identifier_errors: IdentifierErrors = IdentifierErrors()
    row_defects: RowDefects = RowDefects()
    geography: Geography = Geography()
    registration: Registration = Registration()
    economic_activity: EconomicActivity = EconomicActivity()
    disability: Disability = Disability()
    selection: Selection = Selection()
    self_report: SelfReport = SelfReport()
    outcomes: Outcomes = Outcomes()
    health_effect: HealthEffect = HealthEffect()
    activity: Activity = Activity()
    under_served: UnderServed = UnderServed()
    chunk_people: int = Field(100_000, ge=1000, description="people per activity chunk (memory vs. speed)")

    @model_validator(mode="after")
    def _known_names(self) -> SynthConfig:
        checks: list[tuple[str, dict[str, float], tuple[str, ...]]] = [
            (
                "economic_activity.elasticities_inactive_sick",
                self.economic_activity.elasticities_inactive_sick,
                CONDITIONS,
            ),
            (
                "economic_activity.elasticities_unemployed",
                self.economic_activity.elasticities_unemployed,
                CONDITIONS,
            ),
            ("economic_activity.individual_log_or", self.economic_activity.individual_log_or, CONDITIONS),
            ("disability.or_age_band", self.disability.or_age_band, CENSUS_AGE_BANDS),
            ("disability.or_economic_status", self.disability.or_economic_status, ECONOMIC_STATUSES),
            ("disability.or_condition", self.disability.or_condition, CONDITIONS),
            ("selection.or_condition", self.selection.or_condition, CONDITIONS),
            ("selection.or_age_band", self.selection.or_age_band, AGE_BANDS),
            ("selection.or_ethnicity", self.selection.or_ethnicity, ETHNICITIES),
            ("selection.or_imd_quintile", self.selection.or_imd_quintile, ("1", "2", "3", "4", "5")),
            ("selection.or_economic_status", self.selection.or_economic_status, ECONOMIC_STATUSES),
            ("self_report.sensitivity", self.self_report.sensitivity, CONDITIONS),
            ("self_report.ppv", self.self_report.ppv, CONDITIONS),
            ("outcomes.or_age_band", self.outcomes.or_age_band, AGE_BANDS),
            ("outcomes.or_ethnicity", self.outcomes.or_ethnicity, ETHNICITIES),
            ("outcomes.or_imd_quintile", self.outcomes.or_imd_quintile, ("1", "2", "3", "4", "5")),
            ("outcomes.or_condition", self.outcomes.or_condition, CONDITIONS),
            ("outcomes.or_programme", self.outcomes.or_programme, PROGRAMMES),
            ("outcomes.sustained_or_condition", self.outcomes.sustained_or_condition, CONDITIONS),
            ("outcomes.sustained_or_programme", self.outcomes.sustained_or_programme, PROGRAMMES),
            ("health_effect.relative_change", self.health_effect.relative_change, MEASURES),
            ("activity.base_monthly_rate", self.activity.base_monthly_rate, MEASURES),
            ("activity.deprivation_log_rr_per_decile", self.activity.deprivation_log_rr_per_decile, MEASURES),
        ]
        unknown_boosted = sorted(set(self.under_served.conditions) - set(CONDITIONS))
        if unknown_boosted:
            raise ValueError(
                f"under_served.conditions: unknown name(s) {unknown_boosted}; allowed: {list(CONDITIONS)}"
            )
        for key, mapping, allowed in checks:
            unknown = sorted(set(mapping) - set(allowed))
            if unknown:
                raise ValueError(f"{key}: unknown name(s) {unknown}; allowed: {list(allowed)}")
            if key.split(".")[1].startswith(("or_", "sustained_or")) and any(
                v <= 0 for v in mapping.values()
            ):
                raise ValueError(f"{key}: odds ratios must be positive")
        for m, v in self.health_effect.relative_change.items():
            if v <= -1.0:
                raise ValueError(
                    f"health_effect.relative_change.{m}: must be above -1 (a rate cannot go negative)"
                )
        return self

    def with_error_scale(self, scale: float) -> SynthConfig:
        """The same config with every identifier error rate (not presence rates) multiplied by ``scale``."""
        errs = self.identifier_errors.model_dump()
        for key in errs:
            if key not in ("nhs_number_present",):
                errs[key] = min(1.0, errs[key] * scale)
        return self.model_copy(update={"identifier_errors": IdentifierErrors(**errs)})

    def without_health_effect(self) -> SynthConfig:
        return self.model_copy(update={"health_effect": HealthEffect(enabled=False)})


def load_config(path: str | Path) -> SynthConfig:
    """Read a YAML file of overrides (any subset of ``SynthConfig``); errors name the file and key."""
    return load_config_file(
        path,
        SynthConfig,
        "the synthetic-data config",
        hint="see synthetic/README.md for the keys and allowed values",
    )
