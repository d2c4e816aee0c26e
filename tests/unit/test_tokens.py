"""Keyed tokens: the Spark HMAC equals RFC 4231 and Python's hmac; keys separate projects and versions."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ig_policies.master_secret import MasterSecret
from linkage.identifiable.tokens import (
    TOKEN_FIELDS,
    SparkHmacKey,
    hmac_sha256_hex,
    python_token,
    research_pseudonym,
    research_pseudonym_column,
    token_column,
)

pytestmark = pytest.mark.spark

# RFC 4231 HMAC-SHA-256 test cases 1, 2, 3, 4, 6, 7 (case 5 is a truncated output).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. The key needs "
        b"to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]

SECRET = MasterSecret(bytes(range(32)))


@pytest.mark.parametrize(("key", "message", "expected"), RFC4231)
def test_spark_hmac_matches_rfc4231(spark, key, message, expected):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(message.hex(),)], ["m"])
    got = (
        df.select(hmac_sha256_hex(SparkHmacKey.from_key(key), F.unhex("m"), binary=True).alias("h")).first().h
    )
    assert got == expected


def test_spark_tokens_equal_python_tokens_for_unicode_and_edge_values(spark):
    from pyspark.sql import functions as F

    key = SECRET.derive("match-tokens", "p", 1)
    values = ["SMITH", "ZOË", "O'BRIEN", "L8 1AB", "x" * 200, "", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [
        r.t
        for r in df.select(token_column(SparkHmacKey.from_key(key), "name", F.col("v")).alias("t")).collect()
    ]
    assert got == [python_token(key, "name", v) for v in values]
    assert got[-2:] == [None, None]  # empty and missing values never get a token


def test_same_value_same_project_same_token_and_other_project_or_version_differ(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([("SMITH",), ("SMITH",)], ["v"])

    def tokens(project: str, version: int) -> list[str]:
        key = SparkHmacKey.from_key(SECRET.derive("match-tokens", project, version))
        return [r.t for r in df.select(token_column(key, "name", F.col("v")).alias("t")).collect()]

    same = tokens("ehl-a", 1)
    assert same[0] == same[1]
    assert tokens("ehl-a", 1) == same
    assert tokens("ehl-b", 1)[0] != same[0]
    assert tokens("ehl-a", 2)[0] != same[0]
    assert MasterSecret(bytes(range(1, 33))).derive("match-tokens", "ehl-a", 1) != SECRET.derive(
        "match-tokens", "ehl-a", 1
    )


def test_domains_separate_kinds_but_day_and_month_share_one():
    key = b"k" * 32
    assert python_token(key, "dob_year", "1987") != python_token(key, "postcode_district", "1987")
    assert TOKEN_FIELDS["t_dob_day"][0] == TOKEN_FIELDS["t_dob_month"][0]
    assert TOKEN_FIELDS["t_forename"][0] == TOKEN_FIELDS["t_surname"][0]  # swaps must be detectable
    domains = {d for d, _ in TOKEN_FIELDS.values()}
    assert len(domains) == 10


def test_research_pseudonym_python_equals_spark_and_contract(spark):
    from pyspark.sql import functions as F

    key = SECRET.derive("research-pseudonym", "p", 1)
    raw = ["ways_to_work:WTW000001", "health_into_work:H1", None]
    values = pd.Series(raw, name="v")  # pandas 3 stores the missing value as NaN
    py = research_pseudonym(values, key, "C")
    expected = "C" + hmac.new(key, b"ways_to_work:WTW000001", hashlib.sha256).hexdigest()[:20]
    assert py.iloc[0] == expected
    assert py.iloc[2] is None
    assert len(py.iloc[1]) == 21
    df = spark.createDataFrame([(v,) for v in raw], "v string")
    sp = [
        r.p
        for r in df.select(
            research_pseudonym_column(SparkHmacKey.from_key(key), "C", F.col("v")).alias("p")
        ).collect()
    ]
    assert sp == list(py)


def test_key_never_shows_in_repr():
    key = bytes(range(32))
    prepared = SparkHmacKey.from_key(key)
    assert "redacted" in repr(prepared)
    assert key.hex() not in repr(prepared)
    assert prepared.redact(f"plan: X'{prepared._ipad_hex.upper()}'") == "plan: X'<redacted>'"


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=40), st.binary(min_size=1, max_size=80))
def test_python_token_is_hmac_of_domain_and_value(value, key):
    assert (
        python_token(key, "name", value)
        == hmac.new(key, ("name\x1f" + value).encode(), hashlib.sha256).hexdigest()
    )
