"""The pseudonymisation stage: validated extracts in, tokens and research pseudonyms out.

Reads ``landing/validated/<dataset>.parquet`` (identifiable), and writes ``pseudonymised/`` as
ARCHITECTURE.md describes: employment-support extracts unioned into one table, each health dataset
in its own. In order: the National Data Opt-out removes opted-out patients from every health dataset;
identifiers are standardised (``linkage.identifiable.standardise``); every flag is counted; identifiers become
keyed tokens and research pseudonyms (``linkage.identifiable.tokens``) and keyed Bloom-filter encodings of
names and postcode (``linkage.bloom``); the direct identifiers are dropped. The
keys are derived from the master secret for this project and key version, so a key rotation is a
re-run with ``key_version`` + 1 (recorded in each table's ``_ehl_metadata.json``).

Spark plans of this stage hold key-derived constants, so its Spark errors are reported by type
only, never with Spark's message (which can quote a plan or a value).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig_policies.errors import ConfigError, EhlError, InputError, PolicyRefused
from ig_policies.master_secret import MasterSecret, MasterSecretError, load_master_secret
from ig_policies.policy import DatasetKind, Role
from ig_policies.workspace import Workspace, atomic_directory, write_json
from linkage.bloom import BloomSettings
from linkage.dataset_config import DATASETS_DIR, load_dataset_config
from linkage.identifiable import DIRECT_IDENTIFIERS, RECORD_REFERENCES
from linkage.identifiable.bloom_encoder import BloomEncoder, add_bloom_columns, encoders
from linkage.identifiable.opt_out import read_opt_out_list, remove_opted_out
from linkage.identifiable.standardise import (
    NICKNAMES_CSV,
    flag_aggregations,
    standardise_identifiers,
    with_date_column,
    yes_no,
)
from linkage.identifiable.tokens import (
    RESEARCH_SCHEME,
    TOKEN_FIELDS,
    TOKEN_SCHEME,
    SparkHmacKey,
    add_tokens,
    research_pseudonym_column,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Observation, SparkSession

    from ig_policies.engine import PolicyEngine

ACTION = "pseudonymise"
EMPLOYMENT_TABLE = "employment_support"
METADATA_FILE = "_ehl_metadata.json"
POSTCODE_LOOKUP = "postcode_lookup.csv"
MATCH_TOKEN_PURPOSE = "match-tokens"
RESEARCH_PURPOSE = "research-pseudonym"

#: Columns that identify a person directly; never copied to the pseudonymised zone.
IDENTIFYING_COLUMNS = frozenset({*DIRECT_IDENTIFIERS, *RECORD_REFERENCES, "source_row"})
#: Columns whose presence makes a dataset a "person" table that gets tokens.
PERSON_IDENTIFIERS = ("forename", "surname", "date_of_birth", "nhs_number", "postcode")
FLAG_COLUMNS = ("nhs_number_valid", "dob_valid", "postcode_valid")
EMPLOYMENT_DATE_COLUMNS = ("enrolment_date", "job_start_date")
EMPLOYMENT_BOOL_COLUMNS = ("job_start", "sustained_26_weeks")


@dataclass(frozen=True)
class ExtractSummary:
    """What happened to one validated extract: row counts and flag counts (numbers only)."""

    dataset: str
    kind: str
    table: str
    rows_in: int
    rows_opted_out: int
    rows_out: int
    flags: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PseudonymisationResult:
    """Tables written (name -> directory), the key version used and per-extract summaries."""

    outputs: Mapping[str, Path]
    project_id: str
    key_version: int
    extracts: tuple[ExtractSummary, ...]

    @property
    def rows_in(self) -> int:
        return sum(e.rows_in for e in self.extracts)

    @property
    def rows_out(self) -> int:
        return sum(e.rows_out for e in self.extracts)

    @property
    def rows_opted_out(self) -> int:
        return sum(e.rows_opted_out for e in self.extracts)


class PseudonymisationFailed(EhlError):
    """Spark failed inside the stage; the message names the dataset and error type only."""


# --------------------------------------------------------------------------------------------
# Inputs


def validated_extracts(workspace: Workspace) -> dict[str, Path]:
    """The validated extracts waiting in ``landing/validated/`` (dataset name -> path)."""
    folder = workspace.landing / "validated"
    if not folder.is_dir():
        return {}
    return {
        p.name.removesuffix(".parquet"): p
        for p in sorted(folder.iterdir())
        if p.name.endswith(".parquet") and not p.name.startswith((".", "_"))
    }


def _programme(dataset: str) -> str:
    """The programme an employment extract belongs to: its dataset config's ``programme``, else its name."""
    config = DATASETS_DIR / f"{dataset}.yaml"
    if config.is_file():
        value = load_dataset_config(config).programme
        if value and value.strip():
            return value.strip()
    return dataset


def _read_postcode_lookup(spark: SparkSession, workspace: Workspace) -> DataFrame:
    from pyspark.sql import functions as F

    from linkage.identifiable.standardise import normalise_postcode

    path = workspace.reference / POSTCODE_LOOKUP
    if not path.is_file():
        raise InputError(
            str(path),
            "the postcode lookup is missing, so clients' postcodes cannot be turned into LSOAs",
            hint="put the ONS postcode directory extract (columns pcds, lsoa21cd, lad22cd) there; "
            "'ehl synth' writes one for the demo",
        )
    lookup = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
    missing = [c for c in ("pcds", "lsoa21cd") if c not in lookup.columns]
    if missing:
        raise InputError(
            str(path),
            f"the postcode lookup has no column {', '.join(missing)}",
            hint="use the ONS postcode directory layout: pcds, lsoa21cd, lad22cd",
        )
    pcd, _ = normalise_postcode(F.col("pcds"))
    return (
        lookup.select(pcd.alias("_lookup_postcode"), F.col("lsoa21cd").alias("_lookup_lsoa21cd"))
        .where(F.col("_lookup_postcode").isNotNull())
        .dropDuplicates(["_lookup_postcode"])
    )


# --------------------------------------------------------------------------------------------
# Tables


def _with_dates(df: DataFrame, names: tuple[str, ...], today: dt.date) -> DataFrame:
    """``df`` with each named column as a date: parsed when text, null when absent."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, TimestampType

    for name in names:
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast(DateType()))
        elif isinstance(df.schema[name].dataType, TimestampType):
            df = df.withColumn(name, F.to_date(F.col(name)))
        elif not isinstance(df.schema[name].dataType, DateType):
            df = with_date_column(df, name, today)
    return df


def _as_bool_column(df: DataFrame, name: str):
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    if name not in df.columns:
        return F.lit(None).cast(BooleanType())
    if isinstance(df.schema[name].dataType, BooleanType):
        return F.col(name)
    return yes_no(F.col(name))


def _employment_table(
    std: DataFrame,
    programme: str,
    research_key: SparkHmacKey,
    match_key: SparkHmacKey,
    today: dt.date,
    bloom: tuple[BloomSettings, dict[str, BloomEncoder]],
) -> DataFrame:
    """One programme's pseudonymised rows, in the column order of ARCHITECTURE.md."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    def text(name: str):
        return F.col(name).cast("string") if name in std.columns else F.lit(None).cast(StringType())

    pseudonym = research_pseudonym_column(
        research_key, "C", F.concat(F.lit(f"{programme}:"), F.col("client_ref").cast("string"))
    )
    tokens = add_bloom_columns(
        add_tokens(_with_dates(std, EMPLOYMENT_DATE_COLUMNS, today), match_key), bloom[1], bloom[0]
    )
    sr_columns = sorted(c for c in std.columns if c.startswith("sr_"))
    columns = [
        pseudonym.alias("client_pseudonym"),
        F.lit(programme).alias("programme"),
        *[F.col(t) for t in TOKEN_FIELDS],
        *[F.col(b) for b in bloom[0].fields],
        F.col("sex"),
        F.col("year_of_birth"),
        text("ethnicity").alias("ethnicity"),
        F.col("_lookup_lsoa21cd").alias("lsoa21cd"),
        text("local_authority").alias("local_authority"),
        F.col("enrolment_date"),
        *[_as_bool_column(std, c).alias(c) for c in sr_columns],
        _as_bool_column(std, "job_start").alias("job_start"),
        F.col("job_start_date"),
        _as_bool_column(std, "sustained_26_weeks").alias("sustained_26_weeks"),
        *[F.col(f) for f in FLAG_COLUMNS],
    ]
    return tokens.select(*columns)


def _health_person_table(
    std: DataFrame,
    source_columns: list[str],
    drop: set[str],
    research_key: SparkHmacKey,
    match_key: SparkHmacKey,
    bloom: tuple[BloomSettings, dict[str, BloomEncoder]],
) -> DataFrame:
    from pyspark.sql import functions as F

    pseudonym = research_pseudonym_column(research_key, "P", F.col("patient_id").cast("string"))
    kept = [c for c in source_columns if c not in drop and c not in ("sex", "year_of_birth", *FLAG_COLUMNS)]
    tokens = add_bloom_columns(add_tokens(std, match_key), bloom[1], bloom[0])
    return tokens.select(
        pseudonym.alias("patient_pseudonym"),
        *[F.col(t) for t in TOKEN_FIELDS],
        *[F.col(b) for b in bloom[0].fields],
        F.col("sex"),
        F.col("year_of_birth"),
        *[F.col(c) for c in kept],
        *[F.col(f) for f in FLAG_COLUMNS],
    )


def _health_events_table(df: DataFrame, drop: set[str], research_key: SparkHmacKey) -> DataFrame:
    from pyspark.sql import functions as F

    pseudonym = research_pseudonym_column(research_key, "P", F.col("patient_id").cast("string"))
    return df.select(pseudonym.alias("patient_pseudonym"), *[F.col(c) for c in df.columns if c not in drop])


def _write_table(
    df: DataFrame, dest: Path, metadata: dict[str, Any], observations: Mapping[str, Observation]
) -> dict[str, dict[str, int]]:
    """Write a Spark table atomically at ``dest`` (the step's staging), with its metadata file (including the flag counts observed
    while writing, per extract) inside the table's directory. Returns those counts.

    The counts come from ``DataFrame.observe``: collected during the write, so the identifiers are
    standardised once, not once for counting and again for writing.
    """
    with atomic_directory(dest) as tmp:
        df.write.mode("error").parquet(str(tmp))
        counts = {name: {k: int(v or 0) for k, v in obs.get.items()} for name, obs in observations.items()}
        write_json(tmp / METADATA_FILE, {**metadata, "flag_counts": counts})
    return counts


# --------------------------------------------------------------------------------------------
# The stage


def pseudonymise_extracts(
    workspace: Workspace,
    engine: PolicyEngine,
    actor: str,
    spark: SparkSession,
    master_secret: MasterSecret | None = None,
    key_version: int | None = None,
    today: dt.date | None = None,
    bloom_settings: BloomSettings | None = None,
) -> PseudonymisationResult:
    """Pseudonymise every validated extract (see the module docstring); audited through ``engine``.

    ``master_secret`` defaults to the environment (``load_master_secret``); ``key_version`` to the
    policy's ``linkage.key_version``; ``today`` (bounds dates of birth) to the engine's date.
    ``bloom_settings`` are the Bloom-filter encoding parameters (``linkage.bloom``; default
    ``BloomSettings()``, no fields to write none); they are recorded in ``_ehl_metadata.json``.
    """
    bloom_settings = bloom_settings if bloom_settings is not None else BloomSettings()
    extracts = validated_extracts(workspace)
    if not extracts:
        raise InputError(
            str(workspace.landing / "validated"),
            "there are no validated extracts to pseudonymise",
            hint="run 'ehl validate' first; it writes landing/validated/<dataset>.parquet",
        )
    policy = engine.policy
    version = policy.linkage.key_version if key_version is None else key_version
    if version < 1:
        raise ConfigError(
            f"key version {version} is not valid",
            hint="key versions start at 1 (see the policy's linkage.key_version)",
        )
    today = today or engine.today()

    with engine.step(actor, Role.DATA_PROCESSOR, ACTION, datasets=list(extracts)) as step:
        try:
            secret = master_secret if master_secret is not None else load_master_secret()
        except MasterSecretError as exc:
            raise ConfigError(str(exc), hint="the data processor provides the master secret") from None
        project = policy.project.id
        match_key = SparkHmacKey.from_key(secret.derive(MATCH_TOKEN_PURPOSE, project, version))
        research_key = SparkHmacKey.from_key(secret.derive(RESEARCH_PURPOSE, project, version))
        bloom = (bloom_settings, encoders(bloom_settings, secret, project, version))
        step.inputs(*extracts.values())
        try:
            result = _run(
                workspace,
                engine,
                spark,
                extracts,
                match_key,
                research_key,
                project,
                version,
                today,
                step,
                bloom,
            )
        except EhlError:
            raise
        except Exception as exc:  # Spark/Py4J: never repeat the message, it may quote the plan
            raise PseudonymisationFailed(
                f"Pseudonymisation failed ({type(exc).__name__}). Spark's own message is "
                "withheld because it can contain key-derived constants or identifier values.",
                hint="check that the validated extracts are readable and Spark has enough memory; rerun "
                "with the same inputs, and ask the data processor to inspect the Spark logs inside the TRE",
            ) from None
    return result


def _run(
    workspace: Workspace,
    engine: PolicyEngine,
    spark: SparkSession,
    extracts: dict[str, Path],
    match_key: SparkHmacKey,
    research_key: SparkHmacKey,
    project: str,
    version: int,
    today: dt.date,
    step: Any,
    bloom: tuple[BloomSettings, dict[str, BloomEncoder]],
) -> PseudonymisationResult:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    policy = engine.policy
    unknown = [n for n in extracts if n not in policy.datasets]
    if unknown:
        raise PolicyRefused(
            "dataset_not_permitted",
            f"Validated extract(s) not named as datasets in the policy: {', '.join(unknown)}.",
            hint="remove them from landing/validated/, or ask the IG officer to approve them in a new signed policy",
        )
    frames = {name: spark.read.parquet(str(path)) for name, path in extracts.items()}
    kinds = {name: policy.datasets[name].kind for name in frames}
    employment = [n for n in frames if kinds[n] == DatasetKind.EMPLOYMENT_SUPPORT]
    health = [n for n in frames if kinds[n] != DatasetKind.EMPLOYMENT_SUPPORT]

    # 1. National Data Opt-out, before anything else touches health data.
    # Rows read per health extract (parquet footers: no join runs); the opted-out rows are those
    # read minus those written, since nothing after the opt-out filters rows.
    rows_read: dict[str, int] = {}
    opt_out_path = engine.opt_out_list_path()
    if opt_out_path is not None and health:
        listing = read_opt_out_list(spark, opt_out_path)  # refuses when the list is missing
        step.inputs(opt_out_path)
        rows_read = {n: frames[n].count() for n in health}
        frames.update(remove_opted_out({n: frames[n] for n in health}, listing))

    base_metadata = {
        "project_id": project,
        "key_version": version,
        "token_scheme": TOKEN_SCHEME,
        "token_domains": {name: domain for name, (domain, _) in TOKEN_FIELDS.items()},
        "research_pseudonym_scheme": RESEARCH_SCHEME,
        "phonetic_code": "soundex",
        "nickname_table_sha256": hashlib.sha256(NICKNAMES_CSV.read_bytes()).hexdigest(),
        "national_data_opt_out_applied": opt_out_path is not None,
        "bloom": bloom[0].metadata(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    summaries: list[ExtractSummary] = []
    outputs: dict[str, Path] = {}

    # 2. Employment support: all programmes into one table.
    if employment:
        lookup = _read_postcode_lookup(spark, workspace)
        step.inputs(workspace.reference / POSTCODE_LOOKUP)
        parts = []
        observations: dict[str, Observation] = {}
        for name in employment:
            std = standardise_identifiers(frames[name], today)
            std = std.join(F.broadcast(lookup), std["std_postcode"] == lookup["_lookup_postcode"], "left")
            observations[name] = Observation(f"flags_{name}")
            std = std.observe(
                observations[name],
                *flag_aggregations(
                    postcode_not_in_lookup=F.col("postcode_valid") & F.col("_lookup_lsoa21cd").isNull()
                ).values(),
            )
            parts.append(_employment_table(std, _programme(name), research_key, match_key, today, bloom))
        table = parts[0]
        for part in parts[1:]:
            table = table.unionByName(part, allowMissingColumns=True)
        dest = workspace.pseudonymised / EMPLOYMENT_TABLE
        metadata = {
            **base_metadata,
            "table": EMPLOYMENT_TABLE,
            "sources": employment,
            "programmes": {n: _programme(n) for n in employment},
        }
        flags_by_extract = _write_table(table, step.stage(dest), metadata, observations)
        outputs[EMPLOYMENT_TABLE] = dest
        for name in employment:
            rows = flags_by_extract[name]["rows"]
            summaries.append(
                ExtractSummary(
                    name, str(kinds[name]), EMPLOYMENT_TABLE, rows, 0, rows, flags_by_extract[name]
                )
            )

    # 3. Health datasets, one table each.
    for name in health:
        df = frames[name]
        drop = set(IDENTIFYING_COLUMNS) | set(policy.datasets[name].direct_identifiers)
        if "patient_id" not in df.columns:
            raise InputError(
                str(extracts[name]),
                "a health dataset needs a patient_id column to be pseudonymised",
                hint="check the dataset config's column mapping, then run 'ehl validate' again",
            )
        observation = Observation(f"flags_{name}")
        if any(c in df.columns for c in PERSON_IDENTIFIERS):
            std = standardise_identifiers(df, today)
            std = std.observe(observation, *flag_aggregations().values())
            table = _health_person_table(std, df.columns, drop, research_key, match_key, bloom)
        else:
            table = _health_events_table(
                df.observe(observation, F.count(F.lit(1)).alias("rows")), drop, research_key
            )
        dest = workspace.pseudonymised / name
        metadata = {**base_metadata, "table": name, "sources": [name]}
        flags = _write_table(table, step.stage(dest), metadata, {name: observation})[name]
        outputs[name] = dest
        rows_out = flags["rows"]  # every row left after the opt-out is written: none is filtered
        rows_in = rows_read.get(name, rows_out)
        summaries.append(
            ExtractSummary(name, str(kinds[name]), name, rows_in, rows_in - rows_out, rows_out, flags)
        )

    step.counts(
        rows_in=sum(s.rows_in for s in summaries),
        rows_accepted=sum(s.rows_out for s in summaries),
        rows_quarantined=0,
        rows_opted_out=sum(s.rows_opted_out for s in summaries),
    )
    step.detail(
        key_version=version,
        token_scheme=TOKEN_SCHEME,
        bloom=bloom[0].metadata(),
        tables={n: str(p.relative_to(workspace.root)) for n, p in outputs.items()},
        extracts={
            s.dataset: {
                "table": s.table,
                "rows_in": s.rows_in,
                "rows_opted_out": s.rows_opted_out,
                "rows_out": s.rows_out,
                "flags": dict(s.flags),
            }
            for s in summaries
        },
    )
    return PseudonymisationResult(outputs, project, version, tuple(summaries))
