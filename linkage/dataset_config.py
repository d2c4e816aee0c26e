"""What a provider sends us and how to read it: one YAML file per dataset in ``linkage/datasets/``.

Providers name their columns, code their values and write their dates in their own ways. Instead
of one reader per provider, each extract is described by data (file, format, encoding, column
mapping, value recodes, date formats) plus the rules its rows must meet. The same validation code
then reads every provider, and a new provider or a renamed column is a config change reviewed like
any other, not new code.

Date formats are Spark datetime patterns (``dd/MM/yyyy``, ``d-MMM-yy``); an ISO date
(``yyyy-MM-dd``) is always accepted as well, because spreadsheets hand dates over as real dates.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ig_policies.config_file import read_config_file, validate_config
from ig_policies.errors import ConfigError

#: where the demo dataset configs live (shipped with the package)
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"

Kind = Literal["employment_support", "health_demographics", "health_conditions", "health_activity"]
FileFormat = Literal["csv", "xlsx", "parquet"]

#: canonical fields each kind must deliver: the downstream stages (standardisation,
#: pseudonymisation, the research dataset) rely on them, so a config that does not map them is wrong.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "employment_support": ("client_ref", "date_of_birth", "sex", "enrolment_date"),
    "health_demographics": ("patient_id", "date_of_birth", "sex"),
    "health_conditions": ("patient_id", "condition", "diagnosis_date"),
    "health_activity": ("patient_id", "month", "measure", "count"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowRange(_Strict):
    """How many rows a delivery of this extract should have; outside it the whole file is suspect."""

    min: int = Field(1, ge=0)
    max: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> RowRange:
        if self.max is not None and self.max < self.min:
            raise ValueError("max must not be below min")
        return self


class DateRule(_Strict):
    """An enrolment or event date: parsed to a real date, inside [min, max] and never in the future."""

    format: str | None = Field(
        None, description="Spark pattern of text dates; None when the file has real dates"
    )
    min: dt.date | None = None
    max: dt.date | None = None
    required: bool = False


class BirthDateRule(_Strict):
    """Plausibility of dates of birth. The text is kept as sent; only parseable dates are judged."""

    field: str = "date_of_birth"
    formats: tuple[str, ...] = ()
    min_age: int = Field(0, ge=0)
    max_age: int = Field(110, ge=1)
    age_at: str | None = Field(None, description="date field the age is taken at (default: the run date)")


class DatasetConfig(_Strict):
    """One provider extract: where it is, how to read it, how to map it, what its rows must meet."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Kind
    description: str = ""
    file: str = Field(min_length=1, description="path under landing/")
    format: FileFormat | None = Field(None, description="None: recognised from the file's content")
    encoding: str | None = Field(None, description="text encoding of a CSV; None: detected")
    delimiter: str | None = Field(None, min_length=1, max_length=1, description="None: detected")
    sheet: str | None = Field(None, description="worksheet of an .xlsx (default: the first)")
    programme: str | None = Field(None, description="employment programme name added as `programme`")
    columns: dict[str, str] = Field(min_length=1, description="provider column -> canonical field")
    required: tuple[str, ...] | None = Field(
        None, description="canonical fields the file must have (default: all)"
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="field -> provider value -> canonical"
    )
    value_sets: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="field -> allowed values"
    )
    keys: tuple[str, ...] = Field((), description="fields that together identify a row: not null, unique")
    not_null: tuple[str, ...] = ()
    types: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="field -> accepted Spark types (e.g. IntegerType) for typed files"
    )
    dates: dict[str, DateRule] = Field(default_factory=dict)
    date_of_birth: BirthDateRule | None = None
    nhs_number: str | None = Field(None, description="field holding NHS numbers, checked by modulus 11")
    max_invalid_nhs_fraction: float = Field(0.02, ge=0.0, le=1.0, description="of the NHS numbers given")
    max_missing_dob_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="dates of birth empty or unreadable"
    )
    small_extract_allowance: int = Field(
        3,
        ge=0,
        description="invalid NHS numbers / missing dates of birth tolerated whatever the fraction, so that "
        "one typo in a 20-row extract does not stop the flow (these rows are kept, not quarantined)",
    )
    expected_rows: RowRange = Field(default_factory=RowRange)
    max_quarantine_fraction: float = Field(0.05, ge=0.0, le=1.0, description="used when the policy sets none")

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        canonical = list(self.columns.values())
        dupes = sorted({c for c in canonical if canonical.count(c) > 1})
        if dupes:
            raise ValueError(f"columns: two provider columns map to the same field: {', '.join(dupes)}")
        known = set(canonical)
        missing_kind = [f for f in KIND_FIELDS[self.kind] if f not in known]
        if missing_kind:
            raise ValueError(f"columns: a {self.kind} extract must map {', '.join(missing_kind)}")
        referenced: dict[str, list[str]] = {
            "required": list(self.required or ()),
            "values": list(self.values),
            "value_sets": list(self.value_sets),
            "keys": list(self.keys),
            "not_null": list(self.not_null),
            "types": list(self.types),
            "dates": list(self.dates),
        }
        if self.date_of_birth is not None:
            referenced["date_of_birth.field"] = [self.date_of_birth.field]
            if self.date_of_birth.age_at is not None:
                referenced["date_of_birth.age_at"] = [self.date_of_birth.age_at]
        if self.nhs_number is not None:
            referenced["nhs_number"] = [self.nhs_number]
        for key, fields in referenced.items():
            unknown = [f for f in fields if f not in known]
            if unknown:
                raise ValueError(f"{key}: not a mapped field: {', '.join(unknown)}")
        if self.date_of_birth is not None and self.date_of_birth.field in self.dates:
            raise ValueError("dates: the date of birth is kept as text; judge it under date_of_birth")
        if self.kind == "employment_support" and not self.programme:
            raise ValueError("programme: an employment_support extract must name its programme")
        return self

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Canonical fields the received file must contain (all mapped fields unless narrowed)."""
        return self.required if self.required is not None else tuple(self.columns.values())


def load_dataset_config(path: str | os.PathLike[str]) -> DatasetConfig:
    """Read and validate one dataset config; errors name the file and the key."""
    p = Path(path)
    raw = read_config_file(p, "the dataset config")
    raw.setdefault("name", p.stem)
    config = validate_config(
        DatasetConfig,
        raw,
        str(p),
        "the dataset config",
        hint="fix the key(s) named above; linkage/dataset_config.py describes each key",
    )
    if config.name != p.stem:
        raise ConfigError(f"{p}: name: '{config.name}' must match the file name '{p.stem}'")
    return config


def load_dataset_configs(directory: str | os.PathLike[str] | None = None) -> dict[str, DatasetConfig]:
    """All dataset configs in ``directory`` (default: the shipped demo configs), by name."""
    folder = Path(directory) if directory is not None else DATASETS_DIR
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise ConfigError(
            f"{folder}: no dataset configs (*.yaml) found",
            hint="point --datasets-dir at the folder holding one YAML file per provider extract.",
        )
    return {p.stem: load_dataset_config(p) for p in paths}
