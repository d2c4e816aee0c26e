"""Standardisation: each identifier error kind of the synthetic extracts, as input -> expected tables."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from linkage.identifiable.standardise import (
    load_nicknames,
    nhs_number_is_valid,
    standardisation_counts,
    standardise_identifiers,
)
from linkage.identifiable.tokens import SparkHmacKey, add_tokens

pytestmark = pytest.mark.spark

TODAY = dt.date(2026, 6, 1)
COLUMNS = ["case", "forename", "surname", "date_of_birth", "sex", "postcode", "nhs_number"]

# case, forename, surname, date_of_birth (provider text), sex, postcode, nhs_number
RECORDS = [
    ("accents", "Zoë", "Brontë", "1987-03-05", "F", "L8 1AB", "943 476 5919"),
    ("title", "Mr John", "O'Brien", "05/03/1987", "Male", "l81ab", "9434765918"),
    ("title_dot", "Dr. Mary Jane", "Smith-Jones", "5/3/1987", "2", "L8  1AB", "0000000000"),
    ("nickname", "BILL", "van der Berg", "05-Mar-87", "M", "ch41 2xy", None),
    ("sam_f", "sam", "Jones", "05-Mar-19", "F", "CH41-2XY", "4010232137"),
    ("sam_m", "Sam", "Jones", "05-Dec-26", "1", "L8 1A", "123"),
    ("sam_u", "Sam", "Jones", "31882", "x", "12345", ""),
    ("multi", "  josé-luis ", "García  Márquez", "19870305", None, None, "401-023-2137"),
    ("suffix", "Peggy", "Smith Jr", "31/02/1987", "female", "L8 1AB", None),
    ("transposed", "Margaret", "Smith", "03/15/1987", "F", "L8 1AB", None),
    ("future", "", "Smith", "2030-01-01", "F", "L8 1AB", None),
    ("too_old", "Ann", "Smith", "1850-01-01", "F", "L8 1AB", None),
    ("garbage", "Ann", "-", "not a date", "F", "L8 1AB", None),
    ("missing", None, None, None, None, None, None),
]


@pytest.fixture(scope="module")
def std(spark):
    df = spark.createDataFrame(RECORDS, COLUMNS)
    return standardise_identifiers(df, today=TODAY).cache()


@pytest.fixture(scope="module")
def rows(std):
    return {r["case"]: r.asDict() for r in std.collect()}


def test_names_case_accents_titles_punctuation(rows):
    assert (rows["accents"]["std_forename"], rows["accents"]["std_surname"]) == ("ZOE", "BRONTE")
    assert (rows["title"]["std_forename"], rows["title"]["std_surname"]) == ("JOHN", "OBRIEN")
    assert rows["title_dot"]["std_forename"] == "MARY"
    assert rows["future"]["std_forename"] is None  # empty text is missing, never a token
    assert rows["garbage"]["std_surname"] is None
    assert rows["missing"]["std_forename"] is None


def test_hyphenated_double_barrelled_and_particle_surnames(rows):
    r = rows["title_dot"]
    assert (r["std_surname"], r["std_surname_first"], r["std_surname_last"]) == (
        "SMITHJONES",
        "SMITH",
        "JONES",
    )
    r = rows["multi"]
    assert (r["std_surname"], r["std_surname_first"], r["std_surname_last"]) == (
        "GARCIAMARQUEZ",
        "GARCIA",
        "MARQUEZ",
    )
    r = rows["nickname"]
    assert (r["std_surname"], r["std_surname_first"], r["std_surname_last"]) == ("VANDERBERG",) * 3
    assert rows["suffix"]["std_surname"] == "SMITH"


def test_multiple_forenames_take_the_first(rows):
    assert rows["multi"]["std_forename"] == "JOSE"
    assert rows["multi"]["chk_multiple_forenames"] is True
    assert rows["title_dot"]["chk_multiple_forenames"] is True


def test_nicknames_give_canonical_forename_by_sex(rows):
    assert rows["nickname"]["std_forename_canonical"] == "WILLIAM"
    assert rows["suffix"]["std_forename_canonical"] == "MARGARET"
    assert rows["sam_f"]["std_forename_canonical"] == "SAMANTHA"
    assert rows["sam_m"]["std_forename_canonical"] == "SAMUEL"
    assert rows["sam_u"]["std_forename_canonical"] == "SAM"  # ambiguous without a known sex
    assert rows["transposed"]["std_forename_canonical"] == "MARGARET"  # a canonical name maps to itself
    assert len(load_nicknames()) >= 300


def test_phonetic_codes_and_initial(rows):
    assert rows["accents"]["std_surname_phonetic"] == "B653"
    assert rows["title"]["std_forename_phonetic"] == "J500"
    assert rows["title"]["std_forename_initial"] == "J"
    assert rows["missing"]["std_forename_phonetic"] is None


@pytest.mark.parametrize(
    ("case", "iso", "fmt"),
    [
        ("accents", "1987-03-05", "iso"),
        ("title", "1987-03-05", "dd/mm/yyyy"),
        ("title_dot", "1987-03-05", "dd/mm/yyyy"),
        ("nickname", "1987-03-05", "dd-mon-yy"),
        ("sam_f", "2019-03-05", "dd-mon-yy"),
        ("sam_m", "1926-12-05", "dd-mon-yy"),  # 2026-12-05 would be in the future
        ("sam_u", "1987-04-15", "excel_serial"),
        ("multi", "1987-03-05", "yyyymmdd"),
    ],
)
def test_dates_of_birth_in_provider_formats(rows, case, iso, fmt):
    r = rows[case]
    assert (r["std_dob"], r["chk_dob_format"], r["dob_valid"]) == (iso, fmt, True)
    y, m, d = iso.split("-")
    assert (r["std_dob_year"], r["std_dob_month"], r["std_dob_day"], r["year_of_birth"]) == (y, m, d, int(y))


def test_impossible_dates_are_flagged_not_guessed(rows):
    for case in ("suffix", "transposed", "future", "too_old", "garbage", "missing"):
        assert rows[case]["dob_valid"] is False, case
        assert rows[case]["std_dob"] is None, case
        assert rows[case]["year_of_birth"] is None, case
    # recorded parts survive for matching: a transposition 03/15 vs 15/03 can still agree
    assert (rows["transposed"]["std_dob_day"], rows["transposed"]["std_dob_month"]) == ("03", "15")
    assert (rows["suffix"]["std_dob_day"], rows["suffix"]["std_dob_month"]) == ("31", "02")
    assert rows["too_old"]["std_dob_year"] is None
    assert rows["garbage"]["chk_dob_format"] is None


def test_postcodes_normalised_validated_and_split(rows):
    for case in ("accents", "title", "title_dot"):
        r = rows[case]
        assert (r["std_postcode"], r["std_postcode_sector"], r["std_postcode_district"]) == (
            "L8 1AB",
            "L8 1",
            "L8",
        )
        assert r["postcode_valid"] is True
    assert rows["nickname"]["std_postcode"] == "CH41 2XY"
    assert rows["sam_f"]["std_postcode"] == "CH41 2XY"
    for case in ("sam_m", "sam_u", "multi"):
        assert rows[case]["postcode_valid"] is False
        assert rows[case]["std_postcode"] is None
        assert rows[case]["std_postcode_district"] is None


def test_nhs_numbers_check_digit(rows):
    expected = {
        "accents": "9434765919",
        "title": None,  # wrong check digit
        "title_dot": None,  # placeholder of one repeated digit
        "sam_f": "4010232137",
        "sam_m": None,
        "multi": "4010232137",
        "nickname": None,
    }
    for case, value in expected.items():
        assert rows[case]["std_nhs_number"] == value, case
        assert rows[case]["nhs_number_valid"] is (value is not None), case


def test_sex_codes_harmonised(rows):
    got = {
        case: rows[case]["sex"]
        for case in ("accents", "title", "title_dot", "sam_m", "sam_u", "multi", "suffix")
    }
    assert got == {
        "accents": "F",
        "title": "M",
        "title_dot": "F",
        "sam_m": "M",
        "sam_u": "U",
        "multi": "U",
        "suffix": "F",
    }


def test_counts_every_flag(std):
    counts = standardisation_counts(std)
    assert counts["rows"] == len(RECORDS)
    assert counts["nhs_number_invalid"] == 3  # wrong check digit, placeholder, too short
    assert counts["nhs_number_missing"] == 8
    assert counts["nhs_number_valid"] == 3
    assert counts["dob_impossible"] == 4  # 31/02, 03/15, future, 1850
    assert counts["dob_unrecognised_format"] == 1
    assert counts["dob_missing"] == 1
    assert counts["dob_format_excel_serial"] == 1
    assert counts["postcode_invalid"] == 2
    assert counts["postcode_missing"] == 2
    assert counts["title_removed"] == 2
    assert counts["nickname_mapped"] == 4  # BILL, sam (F), Sam (M), Peggy
    assert counts["accents_removed"] == 2
    assert counts["sex_unknown"] == 3


def test_tokens_let_swaps_and_transpositions_agree(spark):
    key = SparkHmacKey.from_key(b"\x01" * 32)
    left = spark.createDataFrame(
        [("a", "John", "Smith", "05/03/1987"), ("b", "Bill", "Jones", "1990-07-21")],
        ["case", "forename", "surname", "date_of_birth"],
    )
    right = spark.createDataFrame(
        [("a", "Smith", "John", "03/05/1987"), ("b", "William", "JONES", "21/07/1990")],
        ["case", "forename", "surname", "date_of_birth"],
    )
    tl = {r.case: r for r in add_tokens(standardise_identifiers(left, TODAY), key).collect()}
    tr = {r.case: r for r in add_tokens(standardise_identifiers(right, TODAY), key).collect()}
    assert tl["a"].t_forename == tr["a"].t_surname and tl["a"].t_surname == tr["a"].t_forename
    assert tl["a"].t_dob_day == tr["a"].t_dob_month and tl["a"].t_dob_month == tr["a"].t_dob_day
    assert tl["a"].t_dob_year == tr["a"].t_dob_year and tl["a"].t_dob != tr["a"].t_dob
    assert tl["b"].t_forename != tr["b"].t_forename
    assert tl["b"].t_forename_canonical == tr["b"].t_forename_canonical
    assert (tl["b"].t_dob, tl["b"].t_surname) == (tr["b"].t_dob, tr["b"].t_surname)


def test_spark_nhs_check_agrees_with_python_reference(spark):
    rng = random.Random(7)
    values = ["".join(rng.choice("0123456789") for _ in range(10)) for _ in range(300)]
    values += ["9434765919", "943 476 5919", "943-476-5919", "94347659190", "94347659", "ABCDEFGHIJ"]
    df = spark.createDataFrame([(v,) for v in values], ["nhs_number"])
    got = [
        r.nhs_number_valid for r in standardise_identifiers(df, TODAY).select("nhs_number_valid").collect()
    ]
    assert got == [nhs_number_is_valid(v) for v in values]
    assert sum(got) > 10  # the random sample includes valid numbers, so the check can fail both ways
