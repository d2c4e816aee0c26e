"""The IG policy: one YAML file per approved project / data-sharing agreement.

The policy is the written-down answer to "what may this service do, for whom, with which fields,
until when". IG officers approve it by signing it (``ig_policies.signing``); the policy engine
(``ig_policies.engine``) refuses any step it does not allow. The schema is strict (unknown keys are
errors, models are frozen) because a typo in a governance document must never silently widen or
narrow what is allowed. Validation errors name the file and the key path.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ig_policies.config_file import read_config_file, validate_config


class Role(StrEnum):
    """Who may do what: processors prepare data, researchers analyse, IG officers govern."""

    DATA_PROCESSOR = "data_processor"
    RESEARCHER = "researcher"
    IG_OFFICER = "ig_officer"


class Analysis(StrEnum):
    """The analyses a policy can permit (``analyses:``)."""

    NATURAL_EXPERIMENT = "natural_experiment"
    EQUITY_AUDIT = "equity_audit"
    SUCCESS_FACTORS = "success_factors"
    CONCORDANCE = "concordance"
    AREA_PROFILE = "area_profile"
    SERVICE_USE = "service_use"
    AREA_TARGETING = "area_targeting"


class DatasetKind(StrEnum):
    """What a dataset is; several programmes' extracts share the kind ``employment_support``."""

    EMPLOYMENT_SUPPORT = "employment_support"
    HEALTH_DEMOGRAPHICS = "health_demographics"
    HEALTH_CONDITIONS = "health_conditions"
    HEALTH_ACTIVITY = "health_activity"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LegalBasis(_Frozen):
    """The lawful basis for processing and the common-law route for confidential patient data."""

    uk_gdpr_article_6: str = Field(min_length=1, description="e.g. 6(1)(e) public task")
    uk_gdpr_article_9: str = Field(min_length=1, description="e.g. 9(2)(j) research")
    common_law_duty: str = Field(min_length=1, description="e.g. s251 support (CAG reference) or consent")
    approvals: tuple[str, ...] = Field(default=(), description="ethics, CAG, DSA references")


class Project(_Frozen):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    legal_basis: LegalBasis
    data_controllers: tuple[str, ...] = Field(min_length=1)
    data_processor: str = Field(min_length=1)


class Validity(_Frozen):
    start: dt.date
    expiry: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Validity:
        if self.expiry < self.start:
            raise ValueError("expiry must not be before start")
        return self


class Retention(_Frozen):
    linked_data_delete_by: dt.date


class User(_Frozen):
    name: str = Field(min_length=1)
    role: Role


class Dataset(_Frozen):
    """One permitted dataset. ``fields`` is the complete list: anything else is dropped at ingest."""

    kind: DatasetKind
    fields: tuple[str, ...] = Field(min_length=1)
    direct_identifiers: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    max_quarantine_fraction: float = Field(0.05, ge=0.0, le=1.0)

    @field_validator("fields", "direct_identifiers", "quasi_identifiers")
    @classmethod
    def _field_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = [
            n for n in names if not n or not (n[0].isalpha() and n.replace("_", "").isalnum() and n.islower())
        ]
        if bad:
            raise ValueError(
                f"field names must be lower_snake_case canonical names: {', '.join(map(repr, bad))}"
            )
        return names

    @model_validator(mode="after")
    def _identifiers_are_fields(self) -> Dataset:
        if len(set(self.fields)) != len(self.fields):
            dupes = sorted({f for f in self.fields if self.fields.count(f) > 1})
            raise ValueError(f"fields listed twice: {', '.join(dupes)}")
        for name in ("direct_identifiers", "quasi_identifiers"):
            unknown = [f for f in getattr(self, name) if f not in self.fields]
            if unknown:
                raise ValueError(f"{name} must also be listed in fields; not in fields: {', '.join(unknown)}")
        both = set(self.direct_identifiers) & set(self.quasi_identifiers)
        if both:
            raise ValueError(
                f"a field cannot be both a direct and a quasi-identifier: {', '.join(sorted(both))}"
            )
        return self


class NationalDataOptOut(_Frozen):
    """Whether the NHS National Data Opt-out applies, and where the processor puts the list."""

    applies: bool
    list_file: str | None = Field(
        None, description="relative to the workspace root, e.g. landing/health/opt_out.csv"
    )

    @model_validator(mode="after")
    def _file_when_applies(self) -> NationalDataOptOut:
        if self.applies and not self.list_file:
            raise ValueError("list_file is required when the opt-out applies")
        return self


class Dominance(_Frozen):
    """(n, k) rule: a cell is disclosive when its n largest contributors make up more than k of it."""

    n: int = Field(2, ge=1)
    k: float = Field(0.9, gt=0.0, le=1.0)


class OutputRules(_Frozen):
    """Statistical disclosure control thresholds applied to every requested output."""

    min_cell_count: int = Field(10, ge=1)
    rounding_base: int = Field(5, ge=1)
    dominance: Dominance = Field(default_factory=Dominance)
    p_percent: float = Field(0.10, ge=0.0, le=1.0)
    min_residual_df: int = Field(10, ge=0)
    zeros_disclosive: bool = True
    #: How many different IG officers must approve a release (four eyes always: never the requester).
    reviews_required: Literal[1, 2] = 1


class LinkageRules(_Frozen):
    """The linkage settings the project was approved for."""

    match_threshold: float = Field(gt=0.0, lt=1.0)
    clerical_review_band: tuple[float, float]
    key_version: int = Field(1, ge=1)

    @field_validator("clerical_review_band")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError("must be [low, high] with 0 <= low <= high <= 1")
        return band

    @model_validator(mode="after")
    def _band_below_threshold(self) -> LinkageRules:
        if self.clerical_review_band[1] > self.match_threshold:
            raise ValueError("the clerical review band must end at or below match_threshold")
        return self


class Policy(_Frozen):
    """A validated policy. Load it with ``load_policy``; the engine only uses signed ones."""

    policy_version: int = Field(ge=1)
    project: Project
    validity: Validity
    retention: Retention
    users: tuple[User, ...] = Field(min_length=1)
    datasets: dict[str, Dataset] = Field(min_length=1)
    national_data_opt_out: NationalDataOptOut
    analyses: tuple[Analysis, ...] = ()
    outputs: OutputRules = Field(default_factory=OutputRules)
    linkage: LinkageRules

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, datasets: dict[str, Dataset]) -> dict[str, Dataset]:
        bad = [name for name in datasets if not name.replace("_", "").isalnum() or not name.islower()]
        if bad:
            raise ValueError(f"dataset names must be lower_snake_case: {', '.join(bad)}")
        return datasets

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        seen: set[tuple[str, Role]] = set()
        for user in self.users:
            if (user.name, user.role) in seen:
                raise ValueError(f"users: {user.name} is listed twice as {user.role.value}")
            seen.add((user.name, user.role))
        if self.retention.linked_data_delete_by < self.validity.start:
            raise ValueError("retention.linked_data_delete_by is before validity.start")
        if len(set(self.analyses)) != len(self.analyses):
            raise ValueError("analyses: an analysis is listed twice")
        return self

    # ---- questions the engine and the stages ask ------------------------------------------

    def users_in_role(self, role: Role | str) -> tuple[str, ...]:
        role = Role(role)
        return tuple(u.name for u in self.users if u.role == role)

    def roles_of(self, user: str) -> tuple[Role, ...]:
        return tuple(u.role for u in self.users if u.name == user)

    def datasets_of_kind(self, kind: DatasetKind | str) -> dict[str, Dataset]:
        kind = DatasetKind(kind)
        return {name: d for name, d in self.datasets.items() if d.kind == kind}

    def resolve_datasets(self, name_or_kind: str) -> dict[str, Dataset]:
        """Datasets meant by a name (``ways_to_work``) or a kind (``employment_support``); {} if neither."""
        if name_or_kind in self.datasets:
            return {name_or_kind: self.datasets[name_or_kind]}
        try:
            return self.datasets_of_kind(name_or_kind)
        except ValueError:
            return {}


# --------------------------------------------------------------------------------------------
# Loading


def read_policy_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw YAML mapping of a policy file (a key given twice is refused); ConfigError if unusable."""
    return read_config_file(path, "the policy", missing_hint="check the path given to --policy")


def policy_from_document(doc: dict[str, Any], source: str = "<policy>") -> Policy:
    """Validate a parsed policy mapping; ConfigError lists every problem by key path."""
    return validate_config(
        Policy,
        doc,
        source,
        "the policy",
        hint="compare with ig_policies/configs/template.yaml, fix the keys listed, then have it signed again",
    )


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file (signature NOT checked: use ``PolicyEngine.load`` for that)."""
    return policy_from_document(read_policy_document(path), source=str(path))
