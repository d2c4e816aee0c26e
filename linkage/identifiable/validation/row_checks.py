"""Row-level checks as Spark expressions: which rows go on, which go to quarantine and why.

Each rule is one vectorised column expression, so a 200k-row extract is judged in one pass. A row
gets the *first* reason that applies, in the order of ``REASONS`` (a malformed row is reported as
malformed, not as a bad date caused by its shifted columns). Great Expectations then measures the
same conditions on the whole extract as the validation of record (see ``suites``).

Judgement calls, kept consistent with "impossible dates are flagged, never silently guessed":

* Dates of birth stay as the provider's text (standardisation parses them for linkage). Here a
  date of birth that is given but is not a real date in the agreed format (``31/02/1985``), or is
  a real date in the future or giving an age outside the dataset's range, quarantines the row as
  ``implausible_dob``: guessing what ``31/02`` meant would plant a wrong identifier. An *empty*
  date of birth is not a fault of the row (linkage does without it); how many are empty or
  unreadable is a Great Expectations check with its own tolerance.
* Invalid NHS numbers (bad format or check digit) are kept and counted: the record can still link
  on other fields, and pseudonymisation gives them no token.
* Duplicate keys: the first row (by ``source_row``) goes on, later ones are quarantined.
* Two-digit birth years are put in the century that places the date in the past.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from linkage.dataset_config import DatasetConfig
from linkage.identifiable.ingest import MALFORMED, SOURCE_ROW

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

#: reason code -> what it means, in the order they are tested (first match wins)
REASONS: dict[str, str] = {
    "malformed_row": "the row has a different number of columns from the header",
    "missing_key": "a key field is empty",
    "duplicate_key": "the key repeats an earlier row",
    "missing_value": "a required field is empty",
    "invalid_date": "a date cannot be read in the agreed format",
    "date_out_of_range": "a date is outside the programme window or in the future",
    "implausible_dob": "the date of birth is not a real date, is in the future or gives an implausible age",
    "invalid_code": "a coded value is not one of the agreed codes",
}

#: derived columns added for the checks; never written to the validated output
REASON_CODE = "reason_code"
REASON = "reason"
REASON_FIELD = "reason_field"  # the canonical field(s) the reason is about ("" for the whole row)
CHECK_NHS_VALID = "check_nhs_number_valid"
CHECK_DOB = "check_dob"
CHECK_DOB_PLAUSIBLE = "check_dob_plausible"

ISO_DATE = "yyyy-MM-dd"
_NHS_WEIGHTS = range(10, 1, -1)


def nhs_number_is_valid(value: str | None) -> bool:
    """Modulus-11 check of an NHS number (spaces and hyphens ignored). Python twin of the Spark rule."""
    if value is None:
        return False
    digits = re.sub(r"[\s-]", "", value)
    if not re.fullmatch(r"[0-9]{10}", digits):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def nhs_number_valid(column: Column) -> Column:
    """True/False for an NHS number's format and check digit; null where there is no number."""
    from pyspark.sql import functions as F

    digits = F.regexp_replace(column, r"[\s-]", "")
    total = None
    for position, weight in enumerate(_NHS_WEIGHTS, start=1):
        term = F.substring(digits, position, 1).try_cast("int") * F.lit(weight)
        total = term if total is None else total + term
    check = F.lit(11) - total % F.lit(11)
    check = F.when(check == 11, F.lit(0)).otherwise(check)
    valid = (
        digits.rlike(r"^[0-9]{10}$") & (check != 10) & (check == F.substring(digits, 10, 1).try_cast("int"))
    )
    return F.when(column.isNull(), F.lit(None).cast("boolean")).otherwise(F.coalesce(valid, F.lit(False)))


def parse_date(
    column: Column, formats: Sequence[str], source_type: str, as_of: dt.date | None = None
) -> Column:
    """A text, date or timestamp column as a real date; null where the text fits no format.

    ``try_to_date`` is strict (``31/02/1980`` is null, never rolled over to March). With ``as_of``,
    a date read through a two-digit-year pattern that lands after ``as_of`` moves back a century.
    """
    from pyspark.sql import functions as F

    if source_type == "date":
        return column
    if source_type == "timestamp":
        return F.to_date(column)
    candidates = [F.try_to_date(column, fmt) for fmt in (*formats, ISO_DATE)]
    parsed = F.coalesce(*candidates) if len(candidates) > 1 else candidates[0]
    two_digit = any("yy" in f and "yyyy" not in f for f in formats)
    if as_of is not None and two_digit:
        parsed = F.when(parsed > F.lit(as_of), F.add_months(parsed, -1200)).otherwise(parsed)
    return parsed


def _source_types(frame: DataFrame) -> dict[str, str]:
    from pyspark.sql import types as T

    kinds: dict[str, str] = {}
    for field in frame.schema.fields:
        if isinstance(field.dataType, T.DateType):
            kinds[field.name] = "date"
        elif isinstance(field.dataType, T.TimestampType | T.TimestampNTZType):
            kinds[field.name] = "timestamp"
        else:
            kinds[field.name] = "other"
    return kinds


def apply_row_checks(frame: DataFrame, config: DatasetConfig, as_of: dt.date) -> DataFrame:
    """Recode values, parse dates and add the check columns and each row's reason (null = accepted).

    Only fields present in ``frame`` (received and permitted) are judged; enrolment and event dates
    come out as real dates, the date of birth as the provider's text.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    present = set(frame.columns)
    kinds = _source_types(frame)
    df = frame

    # 1. provider codes -> canonical codes (unknown codes pass through to fail the value-set rule)
    for field, mapping in config.values.items():
        if field in present and mapping:
            pairs = [F.lit(x) for item in mapping.items() for x in item]
            df = df.withColumn(field, F.coalesce(F.create_map(*pairs)[F.col(field)], F.col(field)))

    failures: list[tuple[str, str, Column]] = []  # (code, field, condition)
    if kinds.get(MALFORMED) is not None:
        failures.append(("malformed_row", "", F.col(MALFORMED)))

    keys = [k for k in config.keys if k in present]
    if keys:
        any_missing = F.lit(False)
        for key in keys:
            any_missing = any_missing | F.col(key).isNull()
        failures.append(("missing_key", ",".join(keys), any_missing))
        order = Window.partitionBy(*keys).orderBy(SOURCE_ROW)
        df = df.withColumn("_occurrence", F.row_number().over(order))
        failures.append(("duplicate_key", ",".join(keys), ~any_missing & (F.col("_occurrence") > 1)))

    for field in config.not_null:
        if field in present and field not in keys:
            failures.append(("missing_value", field, F.col(field).isNull()))

    # 2. enrolment and event dates: parse, then window and "not in the future"
    for field, rule in config.dates.items():
        if field not in present:
            continue
        raw = F.col(field)
        df = df.withColumn(
            f"_parsed_{field}", parse_date(raw, [rule.format] if rule.format else [], kinds[field])
        )
        parsed = F.col(f"_parsed_{field}")  # parsed once, referenced by name below
        if rule.required:
            failures.append(("missing_value", field, raw.isNull()))
        failures.append(("invalid_date", field, raw.isNotNull() & parsed.isNull()))
        latest = min(rule.max, as_of) if rule.max is not None else as_of
        out = parsed > F.lit(latest)
        if rule.min is not None:
            out = out | (parsed < F.lit(rule.min))
        failures.append(("date_out_of_range", field, F.coalesce(out, F.lit(False))))

    # 3. date of birth: judged only where it can be read
    dob_rule = config.date_of_birth
    if dob_rule is not None and dob_rule.field in present:
        df = df.withColumn(
            CHECK_DOB, parse_date(F.col(dob_rule.field), dob_rule.formats, kinds[dob_rule.field], as_of)
        )
        at_field = dob_rule.age_at
        if at_field is not None and f"_parsed_{at_field}" in df.columns:
            reference = F.coalesce(F.col(f"_parsed_{at_field}"), F.lit(as_of))
        else:
            reference = F.lit(as_of)
        age = F.floor(F.months_between(reference, F.col(CHECK_DOB)) / 12)
        plausible = (F.col(CHECK_DOB) <= F.lit(as_of)) & (age >= dob_rule.min_age) & (age <= dob_rule.max_age)
        # given but not a real date (31/02/1985) counts as implausible: never guessed
        given = F.col(dob_rule.field).isNotNull()
        verdict = F.when(F.col(CHECK_DOB).isNotNull(), plausible).when(given, F.lit(False))
        df = df.withColumn(CHECK_DOB_PLAUSIBLE, verdict)
        failures.append(
            ("implausible_dob", dob_rule.field, F.coalesce(~F.col(CHECK_DOB_PLAUSIBLE), F.lit(False)))
        )

    # 4. coded values
    for field, allowed in config.value_sets.items():
        if field in present:
            failures.append(("invalid_code", field, F.col(field).isNotNull() & ~F.col(field).isin(*allowed)))

    if config.nhs_number is not None and config.nhs_number in present:
        df = df.withColumn(CHECK_NHS_VALID, nhs_number_valid(F.col(config.nhs_number)))

    # each row's first failing rule, as an index into the ordered rules: the conditions are
    # evaluated once, and the code and the text are looked up from the index
    ordered = sorted(failures, key=lambda f: list(REASONS).index(f[0]))
    if ordered:
        first = F.coalesce(*[F.when(cond, F.lit(i + 1)) for i, (_, _, cond) in enumerate(ordered)])
        df = df.withColumn("_first_failure", first)
        codes = F.array(*[F.lit(c) for c, _, _ in ordered])
        texts = F.array(*[F.lit(_reason_text(c, field)) for c, field, _ in ordered])
        fields = F.array(*[F.lit(field) for _, field, _ in ordered])
        index = F.col("_first_failure")
        df = df.withColumn(REASON_CODE, F.when(index.isNotNull(), F.element_at(codes, index)))
        df = df.withColumn(REASON, F.when(index.isNotNull(), F.element_at(texts, index)))
        df = df.withColumn(REASON_FIELD, F.when(index.isNotNull(), F.element_at(fields, index))).drop(
            "_first_failure"
        )
    else:
        df = (
            df.withColumn(REASON_CODE, F.lit(None).cast("string"))
            .withColumn(REASON, F.lit(None).cast("string"))
            .withColumn(REASON_FIELD, F.lit(None).cast("string"))
        )

    # the parsed dates replace the text (after the reasons, which needed both)
    for field in config.dates:
        if field in present:
            df = df.withColumn(field, F.col(f"_parsed_{field}")).drop(f"_parsed_{field}")
    return df.drop("_occurrence") if "_occurrence" in df.columns else df


def _reason_text(code: str, field: str) -> str:
    meaning = REASONS[code]
    return f"{meaning} ({field})" if field else meaning
