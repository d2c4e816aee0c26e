"""Linkage benchmark: speed per phase, peak memory and accuracy, on DuckDB and Spark, tokens vs cleartext.

Usage (from the repository root):

    .venv/bin/python benchmarks/link.py --size small            # 20k clients x 200k patients
    .venv/bin/python benchmarks/link.py --size large            # 100k x 1M
    .venv/bin/python benchmarks/link.py --size 5000x50000 --backends duckdb --cleartext
    .venv/bin/python benchmarks/link.py --size 20000x200000 --backends duckdb --cleartext --bloom \
        --error-scales 1,2 --seeds 1,2,3            # the Bloom targets: default and doubled typo rates

The population is synthetic with the default planted error rates of the linkage tests (typos,
nicknames, swapped names, transposed dates, moves, missing NHS numbers, people without a health
record, duplicate enrolments). "cleartext" runs the same model on the standardised values before
pseudonymisation, with fuzzy levels (Jaro-Winkler names, both and either one, one-edit dates and
postcodes) that only cleartext allows: the difference in F1 is what pseudonymisation costs.
"bloom" runs the token model plus Dice levels on keyed Bloom-filter encodings of names and
postcode (``linkage.bloom``), and "bloom-unfolded" (``--unfolded``) the same without the
XOR-folding hardening (its accuracy cost); the "tokens" rows have the Bloom levels switched off.
``--error-scales`` multiplies the planted typo rates (names, nicknames, swaps, dates of birth);
the other planted rates stay at their defaults.

With ``--seeds`` every model runs on each seed's population; the closing lines state the Bloom
model's targets (F1 above the token model's, and at most 0.10 points below the cleartext model's)
on the mean over seeds, with the range over seeds, and whether each is met. Differences of a few
records are noise: use 20000x200000 (about 10-20 s per model on DuckDB) and three seeds.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

import flows  # noqa: E402,F401  (offline defaults)
from linkage import bloom, quality, splink_model  # noqa: E402
from linkage.identifiable import bloom_encoder  # noqa: E402
from linkage.link import link_tables  # noqa: E402
from linkage.link_backend import duckdb_api, spark_api  # noqa: E402
from linkage.linkage_config import LinkageConfig  # noqa: E402
from tests.unit.test_link_population import (  # noqa: E402
    CANONICAL,
    DEFAULT_ERRORS,
    RESEARCH_KEY,
    make_population,
    research_pseudonym,
    tokenise,
    write_workspace_tables,
)

#: Planted error kinds that are recording mistakes (scaled by --error-scale); moves, missing
#: values and people without a health record are not typos and keep their default rates.
TYPO_ERRORS = (
    "forename_typo",
    "surname_typo",
    "nickname",
    "surname_change",
    "swap_names",
    "dob_typo",
    "dob_transpose",
)
BLOOM_SOURCES = {"bf_forename": "forename", "bf_surname": "surname", "bf_postcode": "postcode"}
BLOOM_KEY_SECRET = b"b" * 32  # benchmark-only master secret


def write_bloom(pop, tokens_root: Path, root: Path, settings: bloom.BloomSettings) -> float:
    """The token tables plus Bloom encodings of the standardised names and postcode, as the
    pseudonymiser writes them (with their parameters in ``_ehl_metadata.json``). Returns the
    encoding time in seconds."""
    from ig_policies.master_secret import MasterSecret

    encoders = bloom_encoder.encoders(settings, MasterSecret(BLOOM_KEY_SECRET), "bench", 1)
    shutil.copytree(tokens_root, root)
    seconds = 0.0
    for name, source in (("employment_support", pop.clients), ("health_demographics", pop.patients)):
        path = root / "pseudonymised" / name / "part-00000.parquet"
        table = pd.read_parquet(path)
        t0 = time.perf_counter()
        for column, encoder in encoders.items():
            table[column] = encoder.encode(
                source[BLOOM_SOURCES[column]].astype(object).reset_index(drop=True)
            )
        seconds += time.perf_counter() - t0
        table.to_parquet(path, index=False)
        (root / "pseudonymised" / name / bloom.METADATA_FILE).write_text(
            json.dumps({"bloom": settings.metadata()})
        )
    return seconds


SIZES = {"small": (20_000, 200_000), "large": (100_000, 1_000_000)}
PHASES = ("load", "training", "blocking_count", "predict", "decide_and_cluster")


def cleartext_comparisons() -> list[dict]:
    """The token model's comparisons plus the fuzzy levels cleartext permits (DuckDB SQL)."""
    comparisons = copy.deepcopy(splink_model.token_comparisons())
    fuzzy = {
        "name": {
            "sql_condition": "jaro_winkler_similarity(t_forename_l, t_forename_r) >= 0.88 "
            "AND jaro_winkler_similarity(t_surname_l, t_surname_r) >= 0.88",
            "label_for_charts": "both names similar",
            "m_probability": 0.03,
            "u_probability": 1e-4,
        },
        "date_of_birth": {
            "sql_condition": "levenshtein(t_dob_l, t_dob_r) <= 1",
            "label_for_charts": "one character different",
            "m_probability": 0.02,
            "u_probability": 1e-3,
        },
        "postcode": {
            "sql_condition": "levenshtein(t_postcode_l, t_postcode_r) <= 1",
            "label_for_charts": "one character different",
            "m_probability": 0.01,
            "u_probability": 1e-3,
        },
    }
    # the cleartext twin of the Bloom model's "one name Dice" level, so that the two models keep
    # the same structure and differ only in how similarity is measured (measured: it raises the
    # cleartext F1, most at doubled typo rates)
    one_name = {
        "sql_condition": "jaro_winkler_similarity(t_forename_l, t_forename_r) >= 0.88 "
        "OR jaro_winkler_similarity(t_surname_l, t_surname_r) >= 0.88",
        "label_for_charts": "one name similar",
        "m_probability": 0.005,
        "u_probability": 5e-3,
    }
    for comparison in comparisons:
        extra = fuzzy.get(comparison["output_column_name"])
        if extra:
            levels = comparison["comparison_levels"]
            # after the exact level(s), before the weaker partial ones
            levels.insert(2, extra)
            if comparison["output_column_name"] == "name":
                levels.insert(len(levels) - 1, one_name)  # just before "different"
    return comparisons


def cleartext_table(df: pd.DataFrame) -> pd.DataFrame:
    """Standardised values in the token columns' places (what the pseudonymiser would hash)."""
    dob = pd.to_datetime(pd.Series(df["dob"]), errors="coerce")
    out = tokenise(df)  # for the non-token columns and the layout
    out["t_nhs_number"] = df["nhs_number"].to_numpy()
    out["t_forename"] = df["forename"].to_numpy()
    out["t_forename_canonical"] = df["forename"].map(lambda v: CANONICAL.get(v, v)).to_numpy()
    out["t_surname"] = df["surname"].to_numpy()
    import jellyfish

    out["t_forename_phonetic"] = df["forename"].map(jellyfish.metaphone).to_numpy()
    out["t_surname_phonetic"] = df["surname"].map(jellyfish.metaphone).to_numpy()
    out["t_forename_initial"] = df["forename"].str[:1].to_numpy()
    out["t_dob"] = dob.dt.strftime("%Y-%m-%d").to_numpy()
    out["t_dob_year"] = dob.dt.strftime("%Y").to_numpy()
    out["t_dob_month"] = dob.dt.strftime("%m").to_numpy()
    out["t_dob_day"] = dob.dt.strftime("%d").to_numpy()
    out["t_postcode"] = df["postcode"].to_numpy()
    out["t_postcode_sector"] = df["postcode"].str[:-2].to_numpy()
    out["t_postcode_district"] = df["postcode"].str.split(" ").str[0].to_numpy()
    return out


def write_cleartext(pop, root: Path) -> None:
    left = cleartext_table(pop.clients)
    left.insert(
        0,
        "client_pseudonym",
        research_pseudonym(pop.clients["programme"] + ":" + pop.clients["client_ref"], RESEARCH_KEY, "C"),
    )
    left.insert(1, "programme", pop.clients["programme"].to_numpy())
    left["enrolment_date"] = pop.clients["enrolment_date"].to_numpy()
    right = cleartext_table(pop.patients)
    right.insert(0, "patient_pseudonym", research_pseudonym(pop.patients["patient_id"], RESEARCH_KEY, "P"))
    for name, table in (("employment_support", left), ("health_demographics", right)):
        (root / "pseudonymised" / name).mkdir(parents=True, exist_ok=True)
        table.to_parquet(root / "pseudonymised" / name / "part-00000.parquet", index=False)


def truth_table(pop) -> pd.DataFrame:
    truth = pop.truth
    clients = truth[truth["dataset"] != "health_demographics"].copy()
    patients = truth[truth["dataset"] == "health_demographics"].set_index("person_id")["record_id"]
    clients["client_pseudonym"] = research_pseudonym(
        clients["dataset"] + ":" + clients["record_id"], RESEARCH_KEY, "C"
    )
    true_patient = clients["person_id"].map(patients)
    clients["true_patient"] = research_pseudonym(true_patient.dropna(), RESEARCH_KEY, "P").reindex(
        clients.index
    )
    return clients[["client_pseudonym", "true_patient"]]


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jvm_peak_mb(spark) -> float:
    try:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except Exception:  # the figure is informative only
        return float("nan")
    return float("nan")


def run(
    label: str, db_api, root: Path, config: LinkageConfig, truth: pd.DataFrame, comparisons=None, spark=None
) -> dict:
    t0 = time.perf_counter()
    outcome = link_tables(db_api, root, config, comparisons=comparisons)
    wall = time.perf_counter() - t0
    scores = quality.score_links(outcome.links, truth)
    row = {"run": label, "wall_s": round(wall, 1)}
    row |= {f"{p}_s": round(outcome.timings.get(p, float("nan")), 1) for p in PHASES}
    row["comparisons"] = outcome.blocking_counts[-1].cumulative
    row["python_peak_mb"] = round(_rss_peak_mb())
    if spark is not None:
        row["jvm_peak_mb"] = round(_jvm_peak_mb(spark))
    row |= {k: int(scores[k]) for k in ("tp", "fp", "fn")}
    row |= {k: round(scores[k], 4) for k in ("precision", "recall", "f1")}
    print(
        f"{label}: wall {wall:.1f} s | "
        + " | ".join(f"{p} {outcome.timings.get(p, float('nan')):.1f} s" for p in PHASES)
        + f" | comparisons {row['comparisons']:,} | precision {scores['precision']:.4f} recall {scores['recall']:.4f} "
        f"F1 {scores['f1']:.4f} (missed {scores['fn']:,}, wrong {scores['fp']:,})",
        flush=True,
    )
    return row


#: The targets of the Bloom-filter model, in F1 points (100 x F1): better than exact tokens, and
#: no more than a tenth of a point below the cleartext fuzzy model.
TARGET_OVER_TOKENS = 0.0
TARGET_VS_CLEARTEXT = -0.10


def _verdicts(table: pd.DataFrame) -> list[str]:
    """One line per target and typo scale: the mean difference over seeds, its range, met or not.

    A target counts as met when the mean difference over the seeds meets it; the range shows
    whether single seeds disagree (a difference of a few records is noise at small sizes).
    """
    lines = []
    exact = table.assign(f1=2 * table["tp"] / (2 * table["tp"] + table["fp"] + table["fn"]))
    f1 = exact.pivot_table(index=["scale", "seed"], columns="model", values="f1")
    for scale, part in f1.groupby(level="scale"):
        for other, target, strict in (
            ("tokens", TARGET_OVER_TOKENS, True),
            ("cleartext", TARGET_VS_CLEARTEXT, False),
        ):
            if "bloom" not in part or other not in part:
                continue
            diff = 100 * (part["bloom"] - part[other]).dropna()
            if diff.empty:
                continue
            mean = diff.mean()
            met = mean > target if strict else mean >= target - 1e-9
            seeds_met = int(((diff > target) if strict else (diff >= target - 1e-9)).sum())
            lines.append(
                f"typo rates x{scale:g}: Bloom vs {other}: {mean:+.3f} points "
                f"(target {'>' if strict else '>='} {target:+.2f}; seeds {diff.min():+.3f}..{diff.max():+.3f}, "
                f"{seeds_met}/{len(diff)} seeds meet it) -- {'met' if met else 'NOT met'}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", help="small, large, or CLIENTSxPATIENTS (e.g. 5000x50000)")
    parser.add_argument("--backends", default="duckdb,spark")
    parser.add_argument("--cleartext", action="store_true", help="also run the cleartext model (DuckDB)")
    parser.add_argument(
        "--bloom",
        action="store_true",
        help="also run the Bloom-filter Dice model (DuckDB); see --unfolded",
    )
    parser.add_argument(
        "--unfolded", action="store_true", help="with --bloom: also the model without XOR-folding"
    )
    parser.add_argument(
        "--error-scales", default="1", help="comma-separated multipliers of the planted typo rates (e.g. 1,2)"
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated population seeds (e.g. 1,2,3): every model runs on each, the verdicts "
        "average over them",
    )
    parser.add_argument("--seed", type=int, default=1, help="one population seed (when --seeds is not given)")
    parser.add_argument("--u-max-pairs", type=float, default=2e6)
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--no-repartition", action="store_true", help="Spark: no repartition after blocking")
    args = parser.parse_args()
    logging.getLogger("splink").setLevel(logging.ERROR)

    n_clients, n_patients = SIZES[args.size] if args.size in SIZES else map(int, args.size.split("x"))
    scales = [float(s) for s in args.error_scales.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else [args.seed]
    rows = []
    spark = None
    for scale in scales:
        for seed in seeds:
            suffix = f" x{scale:g} seed {seed}"
            scratch = Path(tempfile.mkdtemp(prefix="ehl-link-bench-"))
            t0 = time.perf_counter()
            errors = {k: DEFAULT_ERRORS[k] * scale for k in TYPO_ERRORS}
            pop = make_population(n_patients, n_clients, seed=seed, errors=errors)
            write_workspace_tables(pop, scratch / "tokens")
            truth = truth_table(pop)
            print(
                f"{n_clients:,} clients x {n_patients:,} patients, typo rates x{scale:g}, seed {seed}; data "
                f"generated and tokenised in {time.perf_counter() - t0:.0f} s"
            )
            tag = {"scale": scale, "seed": seed}
            config = LinkageConfig(u_max_pairs=args.u_max_pairs, bloom_levels=False)
            for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
                if backend == "duckdb":
                    row = run(
                        "tokens/duckdb" + suffix,
                        duckdb_api("8GB", temp_dir=scratch / "duckdb"),
                        scratch / "tokens",
                        config,
                        truth,
                    )
                    rows.append(tag | {"model": "tokens"} | row)
                elif backend == "spark":
                    from flows.settings import SparkSettings
                    from flows.spark_session import build_spark_session

                    if spark is None:
                        spark = build_spark_session(
                            SparkSettings(
                                master="local[2]",
                                driver_memory="6g",
                                shuffle_partitions=args.shuffle_partitions,
                            ),
                            scratch_dir=scratch / "spark",
                        )
                    row = run(
                        "tokens/spark" + suffix,
                        spark_api(spark, repartition_after_blocking=not args.no_repartition),
                        scratch / "tokens",
                        config,
                        truth,
                        spark=spark,
                    )
                    rows.append(tag | {"model": "tokens-spark"} | row)
                else:
                    raise SystemExit(f"unknown backend {backend!r}")
            if args.bloom:
                bloom_config = LinkageConfig(u_max_pairs=args.u_max_pairs, bloom_levels=True)
                variants = [("bloom", bloom.BloomSettings())]
                if args.unfolded:
                    variants.append(("bloom-unfolded", bloom.BloomSettings(fold=False)))
                for label, settings in variants:
                    seconds = write_bloom(pop, scratch / "tokens", scratch / label, settings)
                    records = len(pop.clients) + len(pop.patients)
                    print(
                        f"{label}: {len(settings.fields)} fields encoded in {seconds:.1f} s "
                        f"({1e6 * seconds / records:.1f} s per million records, numpy, one core)"
                    )
                    row = run(
                        f"{label}/duckdb" + suffix,
                        duckdb_api("8GB", temp_dir=scratch / "duckdb"),
                        scratch / label,
                        bloom_config,
                        truth,
                    )
                    row["encode_s"] = round(seconds, 1)
                    row["extra_bytes_per_record"] = len(settings.fields) * settings.words * 8
                    rows.append(tag | {"model": label} | row)
            if args.cleartext:
                write_cleartext(pop, scratch / "clear")
                row = run(
                    "cleartext/duckdb" + suffix,
                    duckdb_api("8GB", temp_dir=scratch / "duckdb"),
                    scratch / "clear",
                    config,
                    truth,
                    comparisons=cleartext_comparisons(),
                )
                rows.append(tag | {"model": "cleartext"} | row)
            if os.environ.get("EHL_KEEP_BENCH"):
                print(f"(scratch data kept in {scratch})")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    table = pd.DataFrame(rows)
    print()
    print(table.drop(columns=["model"]).to_string(index=False))
    summary = table.groupby(["scale", "model"], sort=True).agg(
        seeds=("seed", "count"),
        tp=("tp", "sum"),
        fp=("fp", "sum"),
        fn=("fn", "sum"),
        precision=("precision", "mean"),
        recall=("recall", "mean"),
        f1=("f1", "mean"),
        f1_min=("f1", "min"),
        f1_max=("f1", "max"),
        wall_s=("wall_s", "mean"),
    )
    print(f"\nMean over seeds {','.join(map(str, seeds))} (tp/fp/fn summed):")
    print(summary.round(4).to_string())
    f1 = table.pivot_table(index=["scale", "seed"], columns="model", values="f1")
    for scale, part in f1.groupby(level="scale"):
        if "cleartext" in part and "tokens" in part:
            cost = 100 * (part["cleartext"] - part["tokens"]).mean()
            print(f"\nF1 cost of pseudonymisation with tokens only, typo rates x{scale:g}: {cost:.3f} points")
    verdicts = _verdicts(table)
    if verdicts:
        print("\nTargets of the Bloom-filter model (F1 points, mean over seeds):")
        for line in verdicts:
            print("  " + line)
    wall = table.groupby("model")["wall_s"].mean()
    if "tokens-spark" in wall and "tokens" in wall:
        print(f"Spark / DuckDB wall time: {wall['tokens-spark'] / wall['tokens']:.2f}x")


if __name__ == "__main__":
    main()
