"""Which pseudonymised tables to link, and which of their columns hold which tokens.

The linkage model is written once, against *logical* token names (``t_forename``, ``t_dob_day``,
...). A dataset config maps each logical token to the column a provider's pseudonymised table
actually has, so linking a new provider's extract is a YAML change, not a code change. A token a
provider does not supply is simply left out: the model treats it as missing for every record and
the comparison falls to its "missing" level, which carries no evidence either way.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ig_policies.config_file import load_config_file
from linkage.bloom import ENCODING_COLUMNS

#: The logical tokens the model compares. Every one is an exact-match token (HMAC hex string).
LOGICAL_TOKENS: tuple[str, ...] = (
    "t_nhs_number",
    "t_forename",
    "t_forename_canonical",
    "t_surname",
    "t_forename_phonetic",
    "t_surname_phonetic",
    "t_forename_initial",
    "t_dob",
    "t_dob_year",
    "t_dob_month",
    "t_dob_day",
    "t_postcode",
    "t_postcode_sector",
    "t_postcode_district",
)
#: Non-token field compared as it is (sex is not identifying on its own and is kept in clear).
LOGICAL_PLAIN: tuple[str, ...] = ("sex",)
LOGICAL_FIELDS: tuple[str, ...] = LOGICAL_TOKENS + LOGICAL_PLAIN
#: Keyed Bloom-filter encodings (``linkage.bloom``), compared on their Dice coefficient.
LOGICAL_BLOOM: tuple[str, ...] = ENCODING_COLUMNS


def _identity_mapping() -> dict[str, str]:
    return {name: name for name in (*LOGICAL_FIELDS, *LOGICAL_BLOOM)}


class LinkageTable(BaseModel):
    """One side of the linkage: a pseudonymised Parquet directory and its column roles."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Parquet directory, relative to the workspace root")
    id_column: str = Field(description="the research pseudonym identifying a record")
    #: logical field -> column in this table; fields not listed are treated as always missing
    columns: dict[str, str] = Field(default_factory=_identity_mapping)
    #: extra non-identifying columns carried into the link table (e.g. the programme)
    carry: list[str] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        known = (*LOGICAL_FIELDS, *LOGICAL_BLOOM)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(
                f"unknown logical field(s) {', '.join(unknown)}; the model compares: {', '.join(known)}"
            )
        return value


class LinkageConfig(BaseModel):
    """What to link (left = the records to find, right = the register to find them in) and how."""

    model_config = ConfigDict(extra="forbid")

    left: LinkageTable = Field(
        default_factory=lambda: LinkageTable(
            path="pseudonymised/employment_support", id_column="client_pseudonym", carry=["programme"]
        )
    )
    right: LinkageTable = Field(
        default_factory=lambda: LinkageTable(
            path="pseudonymised/health_demographics", id_column="patient_pseudonym"
        )
    )
    #: columns of the left table used to break match rates down by group in the report
    group_columns: list[str] = Field(
        default_factory=lambda: [
            "programme",
            "sex",
            "ethnicity",
            "year_of_birth",
            "enrolment_date",
            "lsoa21cd",
        ]
    )
    #: u probabilities are counted on (about) this many random non-matching pairs
    u_max_pairs: float = Field(2e6, gt=0)
    #: candidate pairs below this probability are not kept at all (bounds the prediction table)
    prediction_floor: float = Field(0.001, gt=0, lt=1)
    #: best and second-best candidates closer than this many bits of match weight are "ambiguous"
    ambiguity_margin_bits: float = Field(1.0, ge=0)
    max_em_iterations: int = Field(25, ge=1)
    #: add Dice-coefficient levels on the Bloom-filter encodings after the exact-token levels
    #: whenever both tables carry encodings. On by default from measurement (benchmarks/link.py
    #: --bloom --cleartext, 20,000 x 200,000, seeds 1-3): F1 +0.11 points over tokens alone at the
    #: default typo rates and +0.20 at doubled rates, above tokens in every seed
    bloom_levels: bool = True

    @model_validator(mode="after")
    def _distinct_ids(self) -> LinkageConfig:
        if self.left.path == self.right.path:
            raise ValueError("left.path and right.path name the same table; linkage needs two tables")
        return self


def default_linkage_config() -> LinkageConfig:
    """The demo's configuration: employment-support clients against health demographics."""
    return LinkageConfig()


def load_linkage_config(path: str | os.PathLike[str] | None) -> LinkageConfig:
    """Read and validate a linkage config YAML; ``None`` gives the default. Errors name file and key."""
    if path is None:
        return default_linkage_config()
    return load_config_file(
        path,
        LinkageConfig,
        "the linkage config",
        hint="fix the key(s) named above; see linkage/linkage_config.py for the fields",
        missing_hint="check the path given to --config",
    )
