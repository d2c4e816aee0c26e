"""Identifier standardisation on Spark: the step that decides how well pseudonymised records link.

Tokens are keyed hashes, so two spellings of one value can only agree if they are made identical
*before* hashing. Everything here turns provider variation (case, accents, titles, punctuation,
nicknames, date formats, postcode spacing) into one canonical text per identifier, and flags values
that cannot be trusted (impossible dates, NHS numbers failing the check digit, malformed postcodes)
instead of guessing. All functions are Spark column expressions (no Python UDFs), so they run at the
speed of the JVM on any cluster.

This module reads identifiers; only it, ingest, validation and ``pseudonymise`` may do that.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from linkage.identifiable import STANDARDISED_IDENTIFIERS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

NICKNAMES_CSV = Path(__file__).with_name("nicknames.csv")

#: Titles and honorifics removed from the start of a name field ("Mr John" -> "JOHN").
TITLES: tuple[str, ...] = (
    "MR", "MRS", "MISS", "MS", "MX", "DR", "PROF", "PROFESSOR", "REV", "REVD", "FR", "SIR", "DAME",
    "LADY", "LORD", "MASTER", "CAPT", "SGT", "CLLR",
)  # fmt: skip

#: Generational suffixes removed from the end of a surname ("Smith Jr" -> "SMITH").
SUFFIXES: tuple[str, ...] = ("JR", "JNR", "SR", "SNR", "II", "III", "IV")

#: Surname particles glued to the following word, so "van der Berg" is one part, not three.
PARTICLES: tuple[str, ...] = (
    "VAN", "VON", "DER", "DEN", "DE", "DI", "DA", "DU", "DEL", "DELLA", "LA", "LE", "ST", "SAINT",
    "MC", "MAC", "O", "AL", "EL", "BIN", "BEN", "AP",
)  # fmt: skip

# Latin letters with diacritics -> plain capital letters (applied after upper-casing). Multi-letter
# expansions (AE, OE, TH, SS) are separate replacements because translate() maps one to one.
_ACCENTED = "ÀÁÂÃÄÅĀĂĄÇĆĈĊČĎĐÈÉÊËĒĔĖĘĚĜĞĠĢĤĦÌÍÎÏĨĪĬĮİĴĶĹĻĽĿŁÑŃŅŇÒÓÔÕÖØŌŎŐŔŖŘŚŜŞŠȘŢŤŦȚÙÚÛÜŨŪŬŮŰŲŴÝŶŸŹŻŽ"
_PLAIN = "AAAAAAAAACCCCCDDEEEEEEEEEGGGGHHIIIIIIIIIJKLLLLLNNNNOOOOOOOOORRRSSSSSTTTTUUUUUUUUUUWYYYZZZ"
_EXPANSIONS: tuple[tuple[str, str], ...] = (("Æ", "AE"), ("Œ", "OE"), ("Þ", "TH"), ("ẞ", "SS"), ("ß", "SS"))

UK_POSTCODE_PATTERN = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$"

#: Excel's day zero for the 1900 date system (serial 61 is 1900-03-01; 60 is Excel's fictitious
#: 1900-02-29, so serials below 61 are not accepted as birth dates).
EXCEL_EPOCH = dt.date(1899, 12, 30)
EXCEL_FIRST_SERIAL = 61
EARLIEST_BIRTH_YEAR = 1900

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# Provider date formats, tried in order; each names the regex groups holding year, month, day.
_ISO = r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?$"
_DMY4 = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$"
_DMY2 = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2})$"
_DMON = r"^(\d{1,2})[ /.\-]?([A-Za-z]{3})[A-Za-z]*[ /.\-]?(\d{4}|\d{2})$"
_YMD8 = r"^(\d{4})(\d{2})(\d{2})$"
_EXCEL = r"^(\d{2,5})(?:\.0+)?$"

#: The DOB format labels counted in the audit entry.
DOB_FORMATS: tuple[str, ...] = ("iso", "dd/mm/yyyy", "dd/mm/yy", "dd-mon-yy", "yyyymmdd", "excel_serial")

SEX_CODES: dict[str, str] = {
    "M": "M", "MALE": "M", "MAN": "M", "1": "M", "BOY": "M",
    "F": "F", "FEMALE": "F", "WOMAN": "F", "2": "F", "GIRL": "F",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Pure-Python reference checks (also used by tests as the specification of the Spark versions)


def nhs_number_is_valid(value: str | None) -> bool:
    """True when ``value`` (spaces and hyphens ignored) is 10 digits with a correct modulus-11 digit.

    Ten identical digits pass the arithmetic but are placeholders ("0000000000"), so they are invalid.
    """
    if value is None:
        return False
    digits = "".join(ch for ch in str(value) if ch not in " -\t")
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


# --------------------------------------------------------------------------------------------
# Nicknames


@dataclass(frozen=True)
class Nickname:
    nickname: str
    canonical: str
    sex: str  # "M", "F" or "" (either)


@cache
def load_nicknames(path: Path = NICKNAMES_CSV) -> tuple[Nickname, ...]:
    """The nickname table: nickname -> canonical forename, optionally by sex (Sam -> Samuel/Samantha)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [
            Nickname(
                r["nickname"].strip().upper(),
                r["canonical"].strip().upper(),
                (r["sex"] or "").strip().upper(),
            )
            for r in csv.DictReader(fh)
        ]
    return tuple(rows)


def _map_literal(mapping: dict[str, str]) -> Column:
    from pyspark.sql import functions as F

    items: list[Column] = []
    for key, value in sorted(mapping.items()):
        items += [F.lit(key), F.lit(value)]
    return F.create_map(*items)


def canonical_forename(forename: Column, sex: Column) -> Column:
    """The canonical form of a (standardised) forename: a sex-specific entry wins over a general one."""
    from pyspark.sql import functions as F

    table = load_nicknames()
    by_sex = _map_literal({f"{n.nickname}|{n.sex}": n.canonical for n in table if n.sex})
    general = _map_literal({n.nickname: n.canonical for n in table if not n.sex})
    return F.coalesce(
        F.element_at(by_sex, F.concat(forename, F.lit("|"), F.coalesce(sex, F.lit("U")))),
        F.element_at(general, forename),
        forename,
    )


# --------------------------------------------------------------------------------------------
# Names


def plain_upper(col: Column) -> Column:
    """Upper case with diacritics removed (Zoë -> ZOE, Łukasz -> LUKASZ, Ærø -> AERO)."""
    from pyspark.sql import functions as F

    upper = F.upper(col)
    out = upper
    for accented, plain in _EXPANSIONS:
        out = F.regexp_replace(out, accented, plain)
    # most names are plain ASCII: one scan decides, and only the others pay for the replacements
    return F.when(upper.rlike(r"[^\x00-\x7F]"), F.translate(out, _ACCENTED, _PLAIN)).otherwise(upper)


def clean_name(col: Column) -> Column:
    """A name field reduced to capital letters, single spaces and hyphens, without titles/suffixes.

    Apostrophes and full stops vanish (O'Brien = OBrien = OBRIEN); any other punctuation or digit
    separates words. Empty results become null so they never produce a token.
    """
    from pyspark.sql import functions as F

    out = plain_upper(col)
    out = F.regexp_replace(out, "['’‘`.]", "")
    out = F.regexp_replace(out, r"[^A-Z\- ]", " ")
    out = F.regexp_replace(out, r"\s*-+\s*", "-")
    out = F.regexp_replace(out, r"^-+|-+$", "")
    out = F.trim(F.regexp_replace(out, r"\s+", " "))
    titles = "|".join(TITLES)
    out = F.regexp_replace(out, rf"^(?:(?:{titles}) )+(?=[A-Z])", "")
    out = F.regexp_replace(out, rf"(?<=[A-Z]) (?:{'|'.join(SUFFIXES)})$", "")
    return F.when(out == "", None).otherwise(out)


def first_forename(cleaned: Column) -> Column:
    """The first forename of a cleaned forename field ("MARY JANE" and "MARY-JANE" -> MARY)."""
    from pyspark.sql import functions as F

    return F.element_at(F.split(cleaned, r"[ \-]"), 1)


def surname_parts(cleaned: Column) -> Column:
    """The parts of a cleaned surname, particles glued on ("SMITH-JONES" -> [SMITH, JONES];
    "VAN DER BERG" -> [VANDERBERG])."""
    from pyspark.sql import functions as F

    glued = F.regexp_replace(cleaned, rf"\b({'|'.join(PARTICLES)})[ \-](?=[A-Z])", "$1")
    return F.split(glued, r"[ \-]")


def phonetic(col: Column) -> Column:
    """Soundex code of a cleaned name (letters only), null for null. Soundex is a Spark built-in."""
    from pyspark.sql import functions as F

    letters = F.regexp_replace(col, "[^A-Z]", "")
    return F.when(letters == "", None).otherwise(F.soundex(letters))


# --------------------------------------------------------------------------------------------
# Dates of birth


def _today_int(today: dt.date) -> int:
    return today.year * 10000 + today.month * 100 + today.day


def parse_provider_dates(df: DataFrame, source: str, prefix: str, today: dt.date) -> DataFrame:
    """Add ``{prefix}date``, ``{prefix}year``, ``{prefix}month``, ``{prefix}day``, ``{prefix}format``
    parsed from the provider's date text in column ``source``.

    ``date`` is null unless the text is a real calendar date between 1900-01-01 and ``today``;
    ``year``/``month``/``day`` are the parts *as recorded* when the text had a recognised shape (so a
    day/month transposition such as 03/15/1980 keeps its parts for matching even though it is not
    a date); ``format`` names the recognised format or is null. Two-digit years resolve to the
    latest year that does not put the date in the future (05-Mar-87 -> 1987, 05-Mar-19 -> 2019).

    The work is staged over several projections on purpose: one nested expression re-embeds the
    format test in every part and grows too large for Spark to analyse quickly.
    """
    from pyspark.sql import functions as F

    today_int = _today_int(today)
    t, fmt_col = F.col(f"{prefix}_text"), F.col(f"{prefix}format")

    def grp(pattern: str, idx: int) -> Column:
        return F.regexp_extract(t, pattern, idx).try_cast("int")

    out = df.withColumn(f"{prefix}_text", F.trim(F.col(source).cast("string")))
    month_index = F.array_position(
        F.array(*[F.lit(m) for m in _MONTHS]), F.upper(F.regexp_extract(t, _DMON, 2))
    )
    serial = grp(_EXCEL, 1)
    today_serial = (today - EXCEL_EPOCH).days
    out = out.withColumns(
        {
            f"{prefix}_month_name": F.when(month_index > 0, month_index.cast("int")),
            f"{prefix}_serial": F.when(
                t.rlike(_EXCEL) & serial.between(EXCEL_FIRST_SERIAL, today_serial),
                F.date_add(F.lit(EXCEL_EPOCH), F.coalesce(serial, F.lit(0))),
            ),
        }
    )
    month_name, serial_date = F.col(f"{prefix}_month_name"), F.col(f"{prefix}_serial")
    out = out.withColumn(
        f"{prefix}format",
        F.when(t.rlike(_ISO), "iso")
        .when(t.rlike(_DMY4), "dd/mm/yyyy")
        .when(t.rlike(_DMY2), "dd/mm/yy")
        .when(t.rlike(_DMON) & month_name.isNotNull(), "dd-mon-yy")
        .when(t.rlike(_YMD8), "yyyymmdd")
        .when(serial_date.isNotNull(), "excel_serial"),
    )
    out = out.withColumns(
        {
            f"{prefix}_d": F.when(fmt_col == "iso", grp(_ISO, 3))
            .when(fmt_col == "dd/mm/yyyy", grp(_DMY4, 1))
            .when(fmt_col == "dd/mm/yy", grp(_DMY2, 1))
            .when(fmt_col == "dd-mon-yy", grp(_DMON, 1))
            .when(fmt_col == "yyyymmdd", grp(_YMD8, 3))
            .when(fmt_col == "excel_serial", F.dayofmonth(serial_date)),
            f"{prefix}_m": F.when(fmt_col == "iso", grp(_ISO, 2))
            .when(fmt_col == "dd/mm/yyyy", grp(_DMY4, 2))
            .when(fmt_col == "dd/mm/yy", grp(_DMY2, 2))
            .when(fmt_col == "dd-mon-yy", month_name)
            .when(fmt_col == "yyyymmdd", grp(_YMD8, 2))
            .when(fmt_col == "excel_serial", F.month(serial_date)),
            f"{prefix}_y": F.when(fmt_col == "iso", grp(_ISO, 1))
            .when(fmt_col == "dd/mm/yyyy", grp(_DMY4, 3))
            .when(fmt_col == "dd/mm/yy", grp(_DMY2, 3))
            .when(fmt_col == "dd-mon-yy", grp(_DMON, 3))
            .when(fmt_col == "yyyymmdd", grp(_YMD8, 1))
            .when(fmt_col == "excel_serial", F.year(serial_date)),
            f"{prefix}_two_digit": (fmt_col == "dd/mm/yy")
            | ((fmt_col == "dd-mon-yy") & (F.length(F.regexp_extract(t, _DMON, 3)) == 2)),
        }
    )
    d, m, y0 = F.col(f"{prefix}_d"), F.col(f"{prefix}_m"), F.col(f"{prefix}_y")
    in_2000s = (F.lit(2000) + y0) * 10000 + m * 100 + d
    pivoted = F.when(in_2000s <= today_int, F.lit(2000) + y0).otherwise(F.lit(1900) + y0)
    out = out.withColumn(f"{prefix}_year", F.when(F.col(f"{prefix}_two_digit"), pivoted).otherwise(y0))
    y = F.col(f"{prefix}_year")
    iso_text = F.concat_ws(
        "-",
        F.lpad(y.cast("string"), 4, "0"),
        F.lpad(m.cast("string"), 2, "0"),
        F.lpad(d.cast("string"), 2, "0"),
    )
    parsed = F.try_to_date(iso_text, "yyyy-MM-dd")
    in_range = (y >= EARLIEST_BIRTH_YEAR) & (y * 10000 + m * 100 + d <= today_int)
    keep = (
        fmt_col.isNotNull() & y.between(EARLIEST_BIRTH_YEAR, today.year) & m.between(1, 31) & d.between(1, 31)
    )
    out = out.withColumns(
        {
            f"{prefix}date": F.when(parsed.isNotNull() & in_range, parsed),
            f"{prefix}year": F.when(keep, y),
            f"{prefix}month": F.when(keep, m),
            f"{prefix}day": F.when(keep, d),
        }
    )
    scratch = ("_text", "_month_name", "_serial", "_d", "_m", "_y", "_two_digit", "_year")
    return out.drop(*[f"{prefix}{s}" for s in scratch])


def with_date_column(df: DataFrame, name: str, today: dt.date) -> DataFrame:
    """``df`` with text column ``name`` replaced by a date parsed from any provider format (or null)."""
    prefix = f"_{name}_"
    parsed = parse_provider_dates(df, name, prefix, today)
    return parsed.withColumn(name, parsed[f"{prefix}date"]).drop(
        *[f"{prefix}{part}" for part in ("date", "year", "month", "day", "format")]
    )


# --------------------------------------------------------------------------------------------
# Postcodes, NHS numbers, sex, yes/no


def normalise_postcode(col: Column) -> tuple[Column, Column]:
    """``(postcode, valid)``: upper case, one space before the inward code ("l81ab" -> "L8 1AB").

    ``postcode`` is the normalised text when it matches the UK format, else null; ``valid`` is
    false for missing or malformed values.
    """
    from pyspark.sql import functions as F

    compact = F.upper(F.regexp_replace(col.cast("string"), r"[^A-Za-z0-9]", ""))
    spaced = F.when(F.length(compact).between(5, 7), F.regexp_replace(compact, r"^(.+)(.{3})$", "$1 $2"))
    valid = F.coalesce(spaced.rlike(UK_POSTCODE_PATTERN), F.lit(False))
    return F.when(valid, spaced), valid


def postcode_district(postcode: Column) -> Column:
    """The outward code ("L8 1AB" -> "L8"), which is the postal district."""
    from pyspark.sql import functions as F

    return F.element_at(F.split(postcode, " "), 1)


def postcode_sector(postcode: Column) -> Column:
    """Outward code plus the sector digit ("L8 1AB" -> "L8 1")."""
    from pyspark.sql import functions as F

    return F.regexp_extract(postcode, r"^(\S+ \d)", 1)


def normalise_nhs_number(col: Column) -> tuple[Column, Column, Column]:
    """``(nhs_number, valid, present)``: digits only when valid (modulus 11), else null."""
    from pyspark.sql import functions as F

    digits = F.regexp_replace(col.cast("string"), r"[\s\-]", "")
    present = F.coalesce(digits != "", F.lit(False))
    shaped = F.coalesce(digits.rlike(r"^\d{10}$") & ~digits.rlike(r"^(\d)\1{9}$"), F.lit(False))
    total = sum(
        (F.substring(digits, i, 1).try_cast("int") * (11 - i) for i in range(1, 10)),
        F.lit(0),
    )
    check = F.lit(11) - total % 11
    check = F.when(check == 11, 0).otherwise(check)
    valid = shaped & F.coalesce(
        (check != 10) & (check == F.substring(digits, 10, 1).try_cast("int")), F.lit(False)
    )
    return F.when(valid, digits), valid, present


def harmonise_sex(col: Column) -> Column:
    """M, F or U from the codes providers use (Male/Female, M/F, 1/2 NHS codes)."""
    from pyspark.sql import functions as F

    key = F.upper(F.trim(col.cast("string")))
    return F.coalesce(F.element_at(_map_literal(SEX_CODES), key), F.lit("U"))


def yes_no(col: Column) -> Column:
    """Boolean from Y/N style text (Y, YES, TRUE, 1 / N, NO, FALSE, 0); null otherwise."""
    from pyspark.sql import functions as F

    key = F.upper(F.trim(col.cast("string")))
    return F.when(key.isin("Y", "YES", "TRUE", "T", "1"), True).when(
        key.isin("N", "NO", "FALSE", "F", "0"), False
    )


# --------------------------------------------------------------------------------------------
# The whole record


#: Standardised columns added by ``standardise_identifiers`` (prefix ``std_``), plus the three flags.
STANDARD_COLUMNS: tuple[str, ...] = (
    *STANDARDISED_IDENTIFIERS,
    "sex",
    "year_of_birth",
    "nhs_number_valid",
    "dob_valid",
    "postcode_valid",
)

#: Diagnostic columns (prefix ``chk_``) used only to count what standardisation did.
CHECK_COLUMNS: tuple[str, ...] = (
    "chk_nhs_present",
    "chk_dob_present",
    "chk_dob_format",
    "chk_postcode_present",
    "chk_forename_missing",
    "chk_surname_missing",
    "chk_title_removed",
    "chk_multiple_forenames",
    "chk_multi_part_surname",
    "chk_nickname_mapped",
    "chk_accents_removed",
    "chk_sex_unknown",
)


def standardise_identifiers(df: DataFrame, today: dt.date | None = None) -> DataFrame:
    """Add the standardised identifier columns (``STANDARD_COLUMNS``) and check columns.

    Reads whichever of ``forename``, ``surname``, ``date_of_birth``, ``postcode``, ``nhs_number``
    and ``sex`` exist (missing ones give nulls). The original columns are left untouched; the caller
    drops them. ``today`` bounds dates of birth (none may be in the future).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    today = today or dt.date.today()
    cols = set(df.columns)

    def src(name: str) -> Column:
        return F.col(name).cast("string") if name in cols else F.lit(None).cast(StringType())

    raw_forename, raw_surname = src("forename"), src("surname")
    forename_clean = clean_name(raw_forename)
    surname_clean = clean_name(raw_surname)
    sex = harmonise_sex(src("sex"))

    out = df if "date_of_birth" in cols else df.withColumn("date_of_birth", F.lit(None).cast(StringType()))
    out = parse_provider_dates(out, "date_of_birth", "_dob_", today)
    if "date_of_birth" not in cols:
        out = out.drop("date_of_birth")
    out = out.withColumns(
        {
            "_fn_clean": forename_clean,
            "_sn_parts": surname_parts(surname_clean),
            "sex": sex,
        }
    )
    forename = first_forename(F.col("_fn_clean"))
    surname = F.concat_ws("", F.col("_sn_parts"))
    surname = F.when(surname != "", surname)
    out = out.withColumns({"std_forename": forename, "std_surname": surname})

    postcode, postcode_ok = normalise_postcode(src("postcode"))
    nhs, nhs_ok, nhs_present = normalise_nhs_number(src("nhs_number"))

    def two(c: Column) -> Column:
        return F.lpad(c.cast("string"), 2, "0")

    out = out.withColumns(
        {
            "std_forename_canonical": canonical_forename(F.col("std_forename"), F.col("sex")),
            "std_surname_first": F.when(F.col("std_surname").isNotNull(), F.element_at("_sn_parts", 1)),
            "std_surname_last": F.when(F.col("std_surname").isNotNull(), F.element_at("_sn_parts", -1)),
            "std_forename_phonetic": phonetic(F.col("std_forename")),
            "std_surname_phonetic": phonetic(F.col("std_surname")),
            "std_forename_initial": F.substring(F.col("std_forename"), 1, 1),
            "chk_dob_format": F.col("_dob_format"),
            "std_postcode": postcode,
            "postcode_valid": postcode_ok,
            "std_nhs_number": nhs,
            "nhs_number_valid": nhs_ok,
            "chk_nhs_present": nhs_present,
        }
    )
    out = out.withColumns(
        {
            "std_dob": F.date_format(F.col("_dob_date"), "yyyy-MM-dd"),
            "std_dob_year": F.col("_dob_year").cast("string"),
            "std_dob_month": two(F.col("_dob_month")),
            "std_dob_day": two(F.col("_dob_day")),
            "year_of_birth": F.year(F.col("_dob_date")),
            "dob_valid": F.col("_dob_date").isNotNull(),
            "std_postcode_sector": postcode_sector(F.col("std_postcode")),
            "std_postcode_district": postcode_district(F.col("std_postcode")),
            "chk_dob_present": F.coalesce(F.trim(src("date_of_birth")) != "", F.lit(False)),
            "chk_postcode_present": F.coalesce(F.trim(src("postcode")) != "", F.lit(False)),
            "chk_forename_missing": F.col("std_forename").isNull(),
            "chk_surname_missing": F.col("std_surname").isNull(),
            "chk_title_removed": F.coalesce(
                F.upper(raw_forename).rlike(rf"^\s*(?:{'|'.join(TITLES)})\.?\s+\S"), F.lit(False)
            ),
            "chk_multiple_forenames": F.coalesce(F.col("_fn_clean").rlike(r"[ \-]"), F.lit(False)),
            "chk_multi_part_surname": F.coalesce(F.size("_sn_parts") > 1, F.lit(False)),
            "chk_nickname_mapped": F.coalesce(
                F.col("std_forename_canonical") != F.col("std_forename"), F.lit(False)
            ),
            "chk_accents_removed": F.coalesce(
                F.concat_ws("", raw_forename, raw_surname).rlike(r"[^\x00-\x7F]"), F.lit(False)
            ),
            "chk_sex_unknown": F.col("sex") == "U",
        }
    )
    return out.drop(
        "_fn_clean", "_sn_parts", "_dob_date", "_dob_year", "_dob_month", "_dob_day", "_dob_format"
    )


def flag_aggregations(**extra: Column) -> dict[str, Column]:
    """Aggregate expressions counting every flag and rejection of a standardised extract.

    ``extra`` adds counts of further conditions (name -> boolean column). They are plain aggregates
    so the stage can collect them with ``DataFrame.observe`` while it writes, in the same pass.
    """
    from pyspark.sql import functions as F

    def n(cond: Column) -> Column:
        return F.sum(F.when(cond, 1).otherwise(0))

    aggs = {
        "rows": F.count(F.lit(1)),
        "nhs_number_missing": n(~F.col("chk_nhs_present")),
        "nhs_number_invalid": n(F.col("chk_nhs_present") & ~F.col("nhs_number_valid")),
        "nhs_number_valid": n(F.col("nhs_number_valid")),
        "dob_missing": n(~F.col("chk_dob_present")),
        "dob_unrecognised_format": n(F.col("chk_dob_present") & F.col("chk_dob_format").isNull()),
        "dob_impossible": n(F.col("chk_dob_format").isNotNull() & ~F.col("dob_valid")),
        "dob_valid": n(F.col("dob_valid")),
        "postcode_missing": n(~F.col("chk_postcode_present")),
        "postcode_invalid": n(F.col("chk_postcode_present") & ~F.col("postcode_valid")),
        "postcode_valid": n(F.col("postcode_valid")),
        "forename_missing": n(F.col("chk_forename_missing")),
        "surname_missing": n(F.col("chk_surname_missing")),
        "title_removed": n(F.col("chk_title_removed")),
        "multiple_forenames": n(F.col("chk_multiple_forenames")),
        "multi_part_surname": n(F.col("chk_multi_part_surname")),
        "nickname_mapped": n(F.col("chk_nickname_mapped")),
        "accents_removed": n(F.col("chk_accents_removed")),
        "sex_unknown": n(F.col("chk_sex_unknown")),
    }
    for name, cond in extra.items():
        aggs[name] = n(cond)
    for fmt in DOB_FORMATS:
        aggs[f"dob_format_{fmt.replace('/', '_').replace('-', '_')}"] = n(F.col("chk_dob_format") == fmt)
    return {name: expr.alias(name) for name, expr in aggs.items()}


def standardisation_counts(std: DataFrame, **extra: Column) -> dict[str, int]:
    """Counts of every flag and rejection in a standardised extract (numbers only, no values)."""
    aggs = flag_aggregations(**extra)
    row = std.agg(*aggs.values()).first()
    return {name: int(row[name] or 0) for name in aggs}
