"""Pseudonymisation speed: records/s of the whole stage on local Spark, next to the raw HMAC rate.

For each size (default 1M and 5M records) it generates a synthetic employment extract on Spark,
runs the real stage (``pseudonymise_extracts``: standardisation, flag counts, 16 tokens and a research
pseudonym per record, Parquet write, audit entry), and prints records/s. Beside it: HMAC-SHA256
values/s for the same number of values with the Spark expression the stage uses (sha2 ipad/opad
construction), Spark's built-in ``hmac()``, a plain Python ``hmac`` loop (one core) and
``openssl speed -hmac sha256`` (one core), so the distance to the machine's limit is visible. With
``--phonetic`` it also times the built-in Soundex against NYSIIS in an Arrow pandas UDF (jellyfish).

    .venv/bin/python benchmarks/pseudonymise.py --sizes 1000000 5000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402  (module level: the pandas UDF's type hints are resolved here)

import flows  # noqa: E402,F401  (offline defaults before any library import)

DEMO_POLICY = REPO / "ig_policies" / "configs" / "demo" / "policy.yaml"
DEMO_TRUST = REPO / "ig_policies" / "configs" / "demo" / "trust_store.yaml"
TODAY = dt.date(2026, 6, 1)

FORENAMES = [
    "JOHN",
    "Mary",
    "bill",
    "Zoë",
    "Peggy",
    "Mr James",
    "Sarah-Jane",
    "Mohammed",
    "Olivia",
    "Dr. Ann",
]
SURNAMES = [
    "Smith",
    "O'Brien",
    "Smith-Jones",
    "van der Berg",
    "Nguyen",
    "Brontë",
    "Williams",
    "Patel",
    "Taylor",
]


def generate_extract(spark, n: int, path: Path) -> None:
    """A validated employment extract of ``n`` rows with the formats and errors providers send."""
    from pyspark.sql import functions as F

    def pick(values: list[str], salt: int):
        return F.element_at(
            F.array(*[F.lit(v) for v in values]), ((F.col("id") * salt) % len(values) + 1).cast("int")
        )

    born = F.date_add(F.lit(dt.date(1945, 1, 1)), (F.col("id") * 37 % 25000).cast("int"))
    dob = (
        F.when(F.col("id") % 4 == 0, F.date_format(born, "yyyy-MM-dd"))
        .when(F.col("id") % 4 == 1, F.date_format(born, "dd/MM/yyyy"))
        .when(F.col("id") % 4 == 2, F.date_format(born, "dd-MMM-yy"))
        .otherwise(F.datediff(born, F.lit(dt.date(1899, 12, 30))).cast("string"))
    )
    postcode = F.concat(
        pick(["L", "CH", "WA", "PR"], 3),
        (F.col("id") % 30 + 1).cast("string"),
        F.when(F.col("id") % 2 == 0, F.lit(" ")).otherwise(F.lit("")),
        (F.col("id") % 10).cast("string"),
        pick(["AB", "XY", "QZ", "DN", "HT"], 7),
    )
    nhs = F.when(F.col("id") % 5 == 0, F.lpad((F.col("id") * 7919 % 9999999999).cast("string"), 10, "1"))
    df = spark.range(n).select(
        F.concat(F.lit("WTW"), F.col("id").cast("string")).alias("client_ref"),
        pick(FORENAMES, 1).alias("forename"),
        pick(SURNAMES, 13).alias("surname"),
        dob.alias("date_of_birth"),
        pick(["Male", "Female", "M", "F"], 1).alias("sex"),
        postcode.alias("postcode"),
        nhs.alias("nhs_number"),
        pick(["White", "Asian", "Black", "Mixed", "Other"], 11).alias("ethnicity"),
        F.lit("2021-03-01").alias("enrolment_date"),
        F.lit("Liverpool").alias("local_authority"),
        pick(["Y", "N"], 5).alias("sr_depression"),
        pick(["Y", "N"], 3).alias("job_start"),
        F.lit("2021-09-01").alias("job_start_date"),
        pick(["Y", "N"], 7).alias("sustained_26_weeks"),
        (F.col("id") + 1).alias("source_row"),
    )
    df.write.parquet(str(path))


def time_stage(spark, n: int, scratch: Path) -> float:
    from ig_policies.engine import PolicyEngine
    from ig_policies.master_secret import MasterSecret
    from ig_policies.workspace import Workspace, write_csv
    from linkage.identifiable.pseudonymise import pseudonymise_extracts

    ws = Workspace.open(scratch / f"ws-{n}")
    generate_extract(spark, n, ws.landing / "validated" / "ways_to_work.parquet")
    write_csv(
        pd.DataFrame({"pcds": ["L1 0AB"], "lsoa21cd": ["E01006512"], "lad22cd": ["E08000012"]}),
        ws.reference / "postcode_lookup.csv",
    )
    secret = MasterSecret(secrets.token_bytes(32))
    from flows.demo import ensure_demo_deployment

    ensure_demo_deployment(ws)
    engine = PolicyEngine.load(DEMO_POLICY, ws, trust_store=DEMO_TRUST, today=TODAY, master_secret=secret)
    start = time.perf_counter()
    pseudonymise_extracts(ws, engine, "demo-processor", spark, master_secret=secret)
    return time.perf_counter() - start


def time_spark_hmac(spark, n: int) -> tuple[float, float]:
    from pyspark.sql import functions as F

    from linkage.identifiable.tokens import SparkHmacKey, hmac_sha256_hex

    key = secrets.token_bytes(32)
    values = spark.range(n).select(F.concat(F.lit("name\x1f"), F.col("id").cast("string")).alias("v")).cache()
    values.count()
    timings = []
    for expr in (
        hmac_sha256_hex(SparkHmacKey.from_key(key), F.col("v")),
        F.lower(F.hex(F.hmac(F.lit(key), F.encode(F.col("v"), "UTF-8")))),
    ):
        values.select(F.sum(F.length(expr))).collect()  # warm up (code generation)
        start = time.perf_counter()
        values.select(F.sum(F.length(expr))).collect()
        timings.append(time.perf_counter() - start)
    values.unpersist()
    return timings[0], timings[1]


def time_python_hmac(n: int) -> float:
    key = secrets.token_bytes(32)
    messages = [f"name\x1f{i}".encode() for i in range(n)]
    start = time.perf_counter()
    for m in messages:
        hmac.new(key, m, hashlib.sha256).hexdigest()
    return time.perf_counter() - start


def openssl_hmac_per_second() -> float | None:
    if shutil.which("openssl") is None:
        return None
    try:
        out = subprocess.run(
            ["openssl", "speed", "-seconds", "2", "-bytes", "16", "-mr", "-hmac", "sha256"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout + out.stderr  # -mr writes its "+R" result line to stderr
    match = re.search(r"^\+R:(\d+):hmac\(sha256\):([\d.]+)", text, re.MULTILINE)
    return int(match.group(1)) / float(match.group(2)) if match else None


def time_phonetic(spark, n: int) -> tuple[float, float]:
    import jellyfish
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def nysiis(names: pd.Series) -> pd.Series:
        return names.map(lambda s: jellyfish.nysiis(s) if isinstance(s, str) and s else None)

    names = (
        spark.range(n)
        .select(
            F.element_at(
                F.array(
                    *[F.lit(s.upper()) for s in ("SMITH", "JONES", "TAYLOR", "BROWN", "NGUYEN", "PATEL")]
                ),
                (F.col("id") % 6 + 1).cast("int"),
            ).alias("s")
        )
        .cache()
    )
    names.count()
    timings = []
    for expr in (F.soundex("s"), nysiis("s")):
        start = time.perf_counter()
        names.select(F.sum(F.length(expr))).collect()
        timings.append(time.perf_counter() - start)
    names.unpersist()
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--phonetic", action="store_true", help="also time Soundex against NYSIIS (pandas UDF)"
    )
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()

    from flows.settings import SparkSettings
    from flows.spark_session import build_spark_session
    from linkage.identifiable.tokens import TOKEN_FIELDS

    scratch = Path(tempfile.mkdtemp(prefix="ehl-bench-pseudo-"))
    spark = build_spark_session(
        SparkSettings(master="local[2]", driver_memory=args.driver_memory, shuffle_partitions=2),
        scratch / "spark",
    )
    hmacs_per_record = len(TOKEN_FIELDS) + 1
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"per record: {len(TOKEN_FIELDS)} tokens + 1 research pseudonym = {hmacs_per_record} HMAC-SHA256")
    ossl = openssl_hmac_per_second()
    print(
        f"openssl speed -hmac sha256 (16-byte messages, 1 core): {ossl:,.0f} HMAC/s"
        if ossl
        else "openssl: not available"
    )
    try:
        for n in args.sizes:
            stage = time_stage(spark, n, scratch)
            sha2_s, builtin_s = time_spark_hmac(spark, n)
            py_s = time_python_hmac(n)
            print(f"\n== {n:,} records ==")
            print(
                f"stage (standardise, count flags, tokens, write): {stage:7.1f} s   {n / stage:12,.0f} records/s"
            )
            print(f"  = {n * hmacs_per_record / stage:,.0f} HMAC/s inside the stage")
            print(
                f"Spark sha2 ipad/opad HMAC, {n:,} values:         {sha2_s:7.2f} s   {n / sha2_s:12,.0f} HMAC/s"
            )
            print(
                f"Spark built-in hmac(), {n:,} values:             {builtin_s:7.2f} s   {n / builtin_s:12,.0f} HMAC/s"
            )
            print(
                f"Python hmac loop (1 core), {n:,} values:         {py_s:7.2f} s   {n / py_s:12,.0f} HMAC/s"
            )
            if ossl:
                print(f"stage HMAC rate / openssl 1-core rate: {n * hmacs_per_record / stage / ossl:.2f}")
            print(f"stage HMAC rate / Python 1-core rate:  {n * hmacs_per_record / stage / (n / py_s):.2f}")
            shutil.rmtree(scratch / f"ws-{n}", ignore_errors=True)
        if args.phonetic:
            n = args.sizes[0]
            sx, ny = time_phonetic(spark, n)
            print(f"\nphonetic codes, {n:,} names: Soundex built-in {sx:.2f} s; NYSIIS pandas UDF {ny:.2f} s")
        print(f"load average at end {os.getloadavg()[0]:.1f}")
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
