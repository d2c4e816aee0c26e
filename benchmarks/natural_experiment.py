"""Bias and 95% CI coverage of the natural-experiment estimators over many seeds, and event-study speed.

Each seed simulates a region (``analysis.natural_experiment.simulation``) twice, with the planted
effects and with none, and runs the three designs (the event study twice: not-yet-enrolled clients
as the comparison, and with the never-enrolled pool added through ``never_enrolled=``). Coverage is the share of seeds whose 95% CI for
the relative change contains the planted value (target 90-98%). Then the event study is timed on
100k clients x 48 months.

``--synthetic-seeds N`` also runs the research-dataset builder and the three designs on the full
synthetic city region (``synthetic.generate_region``: COVID dip, diagnoses during the window,
selection into enrolment, partial registration), with and without its planted effect, using the
true links (so linkage error is left out) and reading the planted values from ``truth/planted.json``.

    .venv/bin/python benchmarks/natural_experiment.py --seeds 20
    .venv/bin/python benchmarks/natural_experiment.py --seeds 3 --speed-clients 20000   # quick look
    .venv/bin/python benchmarks/natural_experiment.py --seeds 0 --speed-clients 0 --synthetic-seeds 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.natural_experiment.event_study import event_study
from analysis.natural_experiment.its import interrupted_time_series
from analysis.natural_experiment.matched import matched_comparison
from analysis.natural_experiment.panel import DensePanel
from analysis.natural_experiment.simulation import simulate_region
from analysis.vocabulary import MEASURES

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
                    "interrupted_time_series_controlled": interrupted_time_series(
                        region.panel,
                        outcome,
                        calendar_rate=region.comparison_pool.groupby("month")[outcome].mean(),
                    ).estimate,
                    "event_study": event_study(
                        DensePanel.from_long(region.panel, outcome), outcome, placebo_shift=None
                    ).overall,
                    "event_study_with_never_enrolled": event_study(
                        region.panel, outcome, placebo_shift=None, never_enrolled=region.comparison_pool
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
    return _summarise(pd.DataFrame(rows))


def _summarise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(error=df["estimate"] - df["truth"])
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


def _oracle_research_inputs(ws) -> None:
    """Write the pseudonymised-zone tables and a perfect link table from the synthetic truth.

    Research pseudonyms are replaced by the synthetic ids themselves: only the analysis is under
    test here, not pseudonymisation or linkage.
    """
    from ig_policies.workspace import write_parquet

    persons = pd.read_parquet(ws.truth / "persons.parquet")
    enrol = pd.read_parquet(ws.truth / "enrolments.parquet")
    enrol = enrol[enrol["defect"].isna() & enrol["client_ref"].notna()].copy()
    enrol["client_pseudonym"] = enrol["programme"] + ":" + enrol["client_ref"].astype(str)
    links = pd.DataFrame(
        {
            "client_pseudonym": enrol["client_pseudonym"],
            "programme": enrol["programme"],
            "patient_pseudonym": enrol["patient_id"],
            "match_probability": 1.0,
            "match_weight": 30.0,
            "match_status": np.where(enrol["patient_id"].notna(), "matched", "unmatched"),
            "client_cluster": enrol["person_id"],
        }
    )
    write_parquet(links, ws.linked / "links.parquet")
    who = persons.set_index("person_id")
    es = enrol[["client_pseudonym", "programme", "enrolment_date", "job_start", "sustained_26_weeks"]].copy()
    for col in ("sex", "ethnicity", "lsoa21cd"):
        es[col] = enrol["person_id"].map(who[col]).to_numpy()
    es["local_authority"] = enrol["person_id"].map(who["lad22nm"]).to_numpy()
    es["year_of_birth"] = pd.to_datetime(enrol["person_id"].map(who["date_of_birth"])).dt.year.to_numpy()
    for c in [c for c in enrol.columns if c.startswith("sr_")]:
        es[c] = enrol[c].to_numpy()
    demo = pd.read_parquet(ws.landing / "health" / "demographics.parquet")
    demo = demo.rename(columns={"patient_id": "patient_pseudonym"})
    demo["year_of_birth"] = pd.to_datetime(demo["date_of_birth"]).dt.year
    demo = demo.drop(columns=["nhs_number", "forename", "surname", "date_of_birth", "postcode"])
    for name, df in (
        ("employment_support", es),
        ("health_demographics", demo),
        ("health_conditions", pd.read_parquet(ws.landing / "health" / "conditions.parquet")),
        ("health_activity", pd.read_parquet(ws.landing / "health" / "activity.parquet")),
    ):
        df = df.rename(columns={"patient_id": "patient_pseudonym"})
        (ws.pseudonymised / name).mkdir(parents=True, exist_ok=True)
        write_parquet(df, ws.pseudonymised / name / "part-00000.parquet")


def synthetic_region(seeds: int, people: int, outcomes: tuple[str, ...]) -> pd.DataFrame:
    import json
    import tempfile

    from analysis.natural_experiment import estimate_all
    from analysis.research_dataset import PanelSpec, ResearchDatasetInputs, build_tables
    from ig_policies.workspace import Workspace
    from synthetic import generate_region
    from synthetic.config import SynthConfig

    rows = []
    for seed in range(seeds):
        for scenario, cfg in (("planted", SynthConfig()), ("null", SynthConfig().without_health_effect())):
            with tempfile.TemporaryDirectory(prefix="ne-bench-") as tmp:
                ws = Workspace.open(tmp)
                generate_region(ws, people, 100 + seed, cfg)
                planted = json.loads((ws.truth / "planted.json").read_text())["health_effect"]
                _oracle_research_inputs(ws)
                t = time.perf_counter()
                tables = build_tables(ResearchDatasetInputs.of(ws), PanelSpec(pool_size=20_000))
                built = time.perf_counter() - t
                t = time.perf_counter()
                res = estimate_all(
                    tables.panel,
                    tables.comparison_people,
                    tables.comparison_pool,
                    outcomes,
                    placebo_shift=None,
                )
                print(
                    f"  seed {seed} {scenario}: {tables.panel['client_pseudonym'].nunique():,} clients in the panel, "
                    f"research dataset {built:.1f} s, estimators {time.perf_counter() - t:.1f} s",
                    flush=True,
                )
            uncontrolled = [
                replace(
                    interrupted_time_series(tables.panel, o).estimate,
                    estimator="interrupted_time_series_uncontrolled",
                )
                for o in outcomes
            ]
            for est in [*res.estimates, *uncontrolled]:
                truth = planted["relative_change"][est.outcome] if planted["enabled"] else 0.0
                rows.append(
                    {
                        "estimator": est.estimator,
                        "outcome": est.outcome,
                        "scenario": scenario,
                        "truth": truth,
                        "estimate": est.relative_change,
                        "covered": est.covers(truth),
                        "ci_width": est.relative_ci_high - est.relative_ci_low,
                        "significant": not (est.relative_ci_low <= 0 <= est.relative_ci_high),
                    }
                )
    return _summarise(pd.DataFrame(rows))


def speed(clients: int) -> None:
    t = time.perf_counter()
    region = simulate_region(
        n_clients=clients,
        n_pool=10,
        seed=7,
        effects=PLANTED,
        measures=("gp_appointments",),
        full_windows=True,
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
    parser.add_argument("--synthetic-seeds", type=int, default=0)
    parser.add_argument("--synthetic-people", type=int, default=60_000)
    args = parser.parse_args()
    if args.seeds > 0:
        summary = accuracy(args.seeds, args.clients, args.pool)
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
            print(f"\nRelative change, {args.seeds} seeds, {args.clients} clients, pool {args.pool}:")
            print(summary.to_string(index=False))
    if args.speed_clients > 0:
        speed(args.speed_clients)
    if args.synthetic_seeds > 0:
        print(f"\nSynthetic city region, {args.synthetic_people:,} residents, true links:")
        summary = synthetic_region(args.synthetic_seeds, args.synthetic_people, MEASURES)
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
            print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
