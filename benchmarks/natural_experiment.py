"""Bias and 95% CI coverage of the natural-experiment estimators over many seeds, and event-study speed.

Each seed simulates a region (``analysis.natural_experiment.simulation``) twice, with the planted
effects and with none, and runs the three designs. Coverage is the share of seeds whose 95% CI for
the relative change contains the planted value (target 90-98%). Then the event study is timed on
100k clients x 48 months.

    .venv/bin/python benchmarks/natural_experiment.py --seeds 20
    .venv/bin/python benchmarks/natural_experiment.py --seeds 3 --speed-clients 20000   # quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.panel import DensePanel
from analysis.natural_experiment.simulation import simulate_region

PLANTED = {"gp_appointments": -0.08, "ae_attendances": -0.12}


def accuracy(seeds: int, clients: int, pool: int) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        for scenario, effects in (("planted", PLANTED), ("null", {})):
            region = simulate_region(n_clients=clients, n_pool=pool, seed=1000 + seed, effects=effects)
            for outcome in PLANTED:
                truth = effects.get(outcome, 0.0)
                found = {
                    "interrupted_time_series": interrupted_time_series(region.panel, outcome).estimate,
                    "event_study": event_study(
                        DensePanel.from_long(region.panel, outcome), outcome, placebo_shift=None
                    ).overall,
                    "matched_comparison": matched_comparison(
                        region.panel, region.comparison_people, region.comparison_pool, outcome
                    ),
                }
                for name, est in found.items():
                    rows.append(
                        {
                            "estimator": name,
                            "outcome": outcome,
                            "scenario": scenario,
                            "truth": truth,
                            "estimate": est.relative_change,
                            "covered": est.covers(truth),
                            "ci_width": est.relative_ci_high - est.relative_ci_low,
                            "significant": not (est.relative_ci_low <= 0 <= est.relative_ci_high),
                        }
                    )
        print(f"seed {seed + 1}/{seeds} done", flush=True)
    df = pd.DataFrame(rows)
    df["error"] = df["estimate"] - df["truth"]
    return (
        df.groupby(["estimator", "outcome", "scenario"])
        .agg(
            truth=("truth", "first"),
            mean_estimate=("estimate", "mean"),
            bias=("error", "mean"),
            rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))),
            coverage=("covered", "mean"),
            mean_ci_width=("ci_width", "mean"),
            rejects_zero=("significant", "mean"),
            seeds=("covered", "size"),
        )
        .reset_index()
    )


def speed(clients: int) -> None:
    t = time.perf_counter()
    region = simulate_region(
        n_clients=clients, n_pool=10, seed=7, effects=PLANTED, measures=("gp_appointments",)
    )
    sim = time.perf_counter() - t
    n_months = len(region.panel)
    t = time.perf_counter()
    dense = DensePanel.from_long(region.panel, "gp_appointments")
    pivot = time.perf_counter() - t
    t = time.perf_counter()
    study = event_study(dense, "gp_appointments", placebo_shift=None)
    es = time.perf_counter() - t
    t = time.perf_counter()
    event_study(dense, "gp_appointments", placebo_shift=12)
    es_placebo = time.perf_counter() - t
    print(f"\nEvent study speed: {clients:,} clients, {n_months:,} person-months (window -24..+24)")
    print(f"  simulate panel               {sim:6.1f} s")
    print(f"  long panel -> dense array    {pivot:6.1f} s")
    print(f"  event study (49 event times) {es:6.1f} s")
    print(f"  event study + placebo        {es_placebo:6.1f} s")
    print(
        f"  overall relative change {study.overall.relative_change:+.4f} (planted {PLANTED['gp_appointments']:+.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--speed-clients", type=int, default=100_000)
    args = parser.parse_args()
    if args.seeds > 0:
        summary = accuracy(args.seeds, args.clients, args.pool)
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
            print(f"\nRelative change, {args.seeds} seeds, {args.clients} clients, pool {args.pool}:")
            print(summary.to_string(index=False))
    if args.speed_clients > 0:
        speed(args.speed_clients)


if __name__ == "__main__":
    main()
