"""Inverse-probability-of-linkage weights: the one function the research dataset and success model share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.linkage_weights import MIN_PROBABILITY, linkage_weights


def _clients(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age_band": rng.choice(["16-24", "25-34", "50-64"], n),
            "sex": rng.choice(["F", "M"], n),
            "ethnicity": rng.choice(["Asian", "White"], n),
            "imd_quintile": pd.array(rng.choice([1, 3, 5], n), dtype="Int64"),
            "programme": rng.choice(["ways_to_work", "health_into_work"], n),
        }
    )
    p_link = np.where(df["ethnicity"] == "Asian", 0.6, 0.9)
    df["linked"] = rng.random(n) < p_link
    return df


def test_the_model_adjusts_for_ethnicity_too() -> None:
    df = _clients(4000)
    w = linkage_weights(df)
    linked = df[df["linked"]]
    share_all = (df["ethnicity"] == "Asian").mean()
    share_weighted = np.average(linked["ethnicity"] == "Asian", weights=w[df["linked"]])
    assert (linked["ethnicity"] == "Asian").mean() < share_all - 0.05
    assert share_weighted == pytest.approx(share_all, abs=0.01)


def test_too_few_clients_for_a_model_give_every_linked_client_weight_one() -> None:
    df = _clients(60)
    w = linkage_weights(df)
    assert w[df["linked"]].eq(1.0).all() and w[~df["linked"]].isna().all()


def test_missing_characteristics_are_a_category_and_no_one_is_linked_means_no_weights() -> None:
    df = _clients(3000)
    df.loc[:99, "imd_quintile"] = pd.NA
    assert linkage_weights(df)[df["linked"]].notna().all()
    assert linkage_weights(df.assign(linked=False)).isna().all()


def test_no_client_weighs_more_than_the_probability_floor_allows() -> None:
    df = _clients(3000)
    # nearly nobody aged 16-24 links: their fitted probability falls below the floor
    young = df["age_band"] == "16-24"
    df.loc[young, "linked"] = False
    df.loc[df.index[young][:3], "linked"] = True
    w = linkage_weights(df)
    rate = df["linked"].mean()
    assert w.max() == pytest.approx(rate / MIN_PROBABILITY)
