"""The toolkit's area findings reproduced at England scale: planted against recovered elasticities.

Usage (from the repository root):

    .venv/bin/python benchmarks/area_profile_england.py                  # 33,755 LSOAs, seed 1
    .venv/bin/python benchmarks/area_profile_england.py --lsoas 5000     # a quicker, smaller England
    .venv/bin/python benchmarks/area_profile_england.py --files /tmp/eng # also write and re-read the files

Generates the synthetic England reference set (``synthetic.england``: practices, QOF registers,
GP registrations by LSOA, census economic activity, with the toolkit's published area result
planted), runs the area profile's own steps on it (apportioning practice prevalence to LSOAs,
then the two elasticity models with local-authority effects and HC3 errors) and prints, per
rate, each condition's planted elasticity beside the estimate and its 95% CI, whether the CI
covers the planted value, and whether the significant set is the planted one; then the run
time of each step. With ``--files`` the set goes through the published file layouts and the
project's loaders, as the area-profile stage reads it. Exits 1 when the significant set or a
headline elasticity is not recovered.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.area_data import (  # noqa: E402
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.area_profile import AREA_RATES, apportion_prevalence, build_area_profile, fit_elasticities  # noqa: E402
from analysis.vocabulary import AREA_OUTCOMES  # noqa: E402
from synthetic.england import CONDITIONS, EnglandConfig, generate_england, write_england_reference  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lsoas", type=int, default=EnglandConfig().lsoas, help="LSOAs (default: England's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--files", type=Path, default=None, help="write the set here and read it back")
    args = parser.parse_args()

    timings: list[tuple[str, float]] = []
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings.append((what, now - clock))
        clock = now

    reference = generate_england(EnglandConfig(lsoas=args.lsoas), seed=args.seed)
    lap("generate the England reference set")
    census, qof, registrations, lookup = (
        reference.census,
        reference.qof,
        reference.registrations,
        reference.lsoa_lookup,
    )
    if args.files is not None:
        paths = write_england_reference(args.files, reference)
        lap("write the published layouts")
        census = load_census_economic_activity(paths["census_economic_activity"])
        qof = load_qof_prevalence(paths["qof_prevalence"])
        registrations = load_gp_registrations(paths["gp_registrations_lsoa"])
        lookup = load_lsoa_lookup(paths["lsoa_lookup"])
        lap("read them with the project's loaders")
    profile = build_area_profile(census, apportion_prevalence(qof, registrations), lookup)
    lap("apportion QOF prevalence to LSOAs")

    counts = reference.truth["counts"]
    print(
        f"Synthetic England (seed {args.seed}): {counts['lsoas']:,} LSOAs, {counts['local_authorities']} "
        f"local authorities, {counts['practices']:,} practices, {len(profile):,} LSOAs in the model\n"
    )
    ok = True
    for outcome in AREA_RATES:
        model = fit_elasticities(profile, outcome, list(CONDITIONS))
        lap(f"fit the {outcome} model")
        table = model.elasticities.set_index("condition")
        print(f"{AREA_OUTCOMES[outcome].capitalize()} (R² {model.fit['r_squared']:.3f})")
        print(f"  {'condition':<20} {'planted':>8} {'estimate':>9} {'95% CI':>17}  covered  significant")
        for c in CONDITIONS:
            row, planted = table.loc[c], reference.planted_elasticity(outcome, c)
            covered = row["ci_low"] <= planted <= row["ci_high"]
            print(
                f"  {c:<20} {planted:>8.2f} {row['elasticity']:>9.3f} "
                f"[{row['ci_low']:>6.3f}, {row['ci_high']:>6.3f}]  {'yes' if covered else 'NO':<7}  "
                f"{'yes' if row['significant'] else 'no'}"
            )
        found, planted_set = set(model.significant_conditions()), set(reference.planted_significant(outcome))
        headline = reference.truth["headline"][outcome]
        head = table.loc[headline]
        head_ok = head["ci_low"] <= reference.planted_elasticity(outcome, headline) <= head["ci_high"]
        same = found == planted_set
        ok = ok and same and bool(head_ok)
        print(f"  significant set recovered: {'yes' if same else 'NO'}", end="")
        if not same:
            print(
                f" (missed: {', '.join(sorted(planted_set - found)) or 'none'}; "
                f"extra: {', '.join(sorted(found - planted_set)) or 'none'})",
                end="",
            )
        print(f"; headline {headline} within its CI: {'yes' if head_ok else 'NO'}\n")

    print("Run time")
    for what, seconds in timings:
        print(f"  {what:<40} {seconds:7.2f} s")
    print(f"  {'total':<40} {sum(s for _, s in timings):7.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
