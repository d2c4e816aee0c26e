"""Validation benchmark: seconds per phase for one employment-support extract of N rows.

Usage (from the repository root):

    .venv/bin/python benchmarks/validation.py                  # 200,000-row Ways to Work extract
    .venv/bin/python benchmarks/validation.py --rows 20000

The extract is the synthetic region's Ways to Work CSV (1,000 people generated, real provider
layout and planted identifier errors) repeated with fresh client references until it has N rows,
so every row is a realistic one. Phases: ingest (read, decode, map, into Spark), row checks
(Spark expressions, one pass, tallies), the Great Expectations suite on the Spark DataFrame, Data
Docs, and writing the validated and quarantine tables. Prints one line per phase.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import flows  # noqa: E402,F401  (offline defaults first)


def build_extract(workspace, rows: int) -> Path:
    from synthetic import generate_region

    generate_region(workspace, 1000, seed=7)
    path = workspace.landing / "employment" / "ways_to_work.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        base = list(reader)
    ref = header.index("Client Ref")
    out = []
    for i in range(rows):
        row = list(base[i % len(base)])
        row[ref] = f"WTW{i:08d}" if row[ref] else ""
        out.append(row)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(out)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    from flows.settings import SparkSettings
    from flows.spark_session import build_spark_session
    from ig_policies.workspace import Workspace, atomic_directory
    from linkage.dataset_config import load_dataset_configs
    from linkage.identifiable.ingest import ingest_extract
    from linkage.identifiable.validation.row_checks import apply_row_checks
    from linkage.identifiable.validation.stage import _judge, _write_outputs, data_docs_dir
    from linkage.identifiable.validation.suites import ValidationContext

    config = load_dataset_configs()["ways_to_work"]
    with tempfile.TemporaryDirectory(prefix="ehl-validation-bench-") as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        t = time.perf_counter()
        path = build_extract(ws, args.rows)
        print(
            f"extract: {args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB ({time.perf_counter() - t:.1f} s to build)"
        )
        spark = build_spark_session(
            SparkSettings(master="local[2]", driver_memory="4g", shuffle_partitions=2)
        )
        spark.range(10).count()
        as_of = dt.date(2026, 6, 1)

        timings: dict[str, float] = {}
        t = time.perf_counter()
        staging = ws.landing / "validated" / ".staging-bench"
        extract = ingest_extract(spark, path, config, config.columns.values(), staging)
        timings["ingest (read, decode, map, to Spark)"] = time.perf_counter() - t

        t = time.perf_counter()
        apply_row_checks(extract.frame, config, as_of).groupBy("reason_code").count().collect()
        timings["row checks alone (one Spark pass)"] = time.perf_counter() - t

        context = ValidationContext()
        t = time.perf_counter()
        result, checked = _judge(extract, config, config.max_quarantine_fraction, context, as_of)
        timings["row checks + tallies + GE suite"] = time.perf_counter() - t

        t = time.perf_counter()
        with atomic_directory(data_docs_dir(ws)) as docs:
            context.build_data_docs(docs)
        timings["Data Docs"] = time.perf_counter() - t

        t = time.perf_counter()
        _write_outputs(ws, result, checked, extract, write_validated=True)
        timings["write validated + quarantine"] = time.perf_counter() - t

        for phase, seconds in timings.items():
            print(f"{phase:40s} {seconds:7.2f} s")
        print(f"{'total':40s} {sum(timings.values()) - timings['row checks alone (one Spark pass)']:7.2f} s")
        print(
            f"rows in {result.rows_in:,}, accepted {result.rows_accepted:,}, quarantined {result.rows_quarantined:,} "
            f"{dict(result.reason_counts)}; GE expectations {len(result.suite.expectations)}, "
            f"failed {len(result.suite.failed)}"
        )
        spark.stop()


if __name__ == "__main__":
    main()
