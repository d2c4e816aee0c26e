"""Under-served high-need areas: a few wards planted with more illness and fewer clients.

Area targeting asks which areas have a health profile that would benefit from targeted support
and are not yet reached. To test that it finds them, a few wards (in different local
authorities) get a higher prevalence of the conditions that drive inactivity through long-term
sickness, so their census rate of that inactivity rises through the planted area model, and a
lower odds of enrolling. Nothing else about them changes. Which wards were chosen is written to
``truth/planted.json`` (``under_served_areas``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from synthetic.config import SynthConfig
from synthetic.geography import Region


def plant_under_served_wards(region: Region, cfg: SynthConfig, rng: np.random.Generator) -> Region:
    """``region`` with an ``under_served`` flag per LSOA: every LSOA of the chosen wards.

    Wards are drawn from the more deprived half (by their LSOAs' mean IMD decile), as areas of
    high need mostly are, from different local authorities while there are enough of them, and
    never the only ward of a local authority (so its LA still has served areas to compare with).
    """
    lsoas = region.lsoas.copy()
    wanted = cfg.under_served.wards
    wards = lsoas.groupby("wd22cd", as_index=False, sort=True).agg(
        lad22cd=("lad22cd", "first"), imd_decile=("imd_decile", "mean")
    )
    per_la = wards.groupby("lad22cd")["wd22cd"].transform("size")
    deprived = wards["imd_decile"] <= wards["imd_decile"].median()
    candidates = wards[(per_la > 1) & deprived]
    chosen: list[str] = []
    las = list(dict.fromkeys(candidates["lad22cd"]))
    rng.shuffle(las)
    for la in las[:wanted]:
        in_la = candidates.loc[candidates["lad22cd"] == la, "wd22cd"].to_numpy()
        chosen.append(str(rng.choice(in_la)))
    rest = candidates.loc[~candidates["wd22cd"].isin(chosen), "wd22cd"].to_numpy()
    if len(chosen) < wanted and len(rest):
        chosen.extend(str(w) for w in rng.choice(rest, min(wanted - len(chosen), len(rest)), replace=False))
    lsoas["under_served"] = lsoas["wd22cd"].isin(chosen)
    return replace(region, lsoas=lsoas)


def under_served_truth(region: Region, cfg: SynthConfig) -> dict[str, Any]:
    """What was planted, for ``truth/planted.json``."""
    lsoas = region.lsoas
    flagged = lsoas[lsoas["under_served"]] if "under_served" in lsoas else lsoas.iloc[:0]
    u = cfg.under_served
    return {
        "model": "in the chosen wards, log prevalence of each boosted condition + condition_log_boost "
        "(so their census inactivity through long-term sickness rises through the planted area model), "
        "and the odds of enrolling multiplied by enrolment_odds_ratio",
        "condition_log_boost": u.condition_log_boost,
        "conditions": list(boosted_conditions(cfg)),
        "enrolment_odds_ratio": u.enrolment_odds_ratio,
        "wards": [
            {
                "wd22cd": code,
                "wd22nm": str(group["wd22nm"].iloc[0]),
                "lad22cd": str(group["lad22cd"].iloc[0]),
                "lsoas": sorted(group["lsoa21cd"].astype(str)),
            }
            for code, group in flagged.groupby("wd22cd", sort=True)
        ],
    }


def boosted_conditions(cfg: SynthConfig) -> tuple[str, ...]:
    """The conditions raised in under-served wards: those that drive inactivity through sickness."""
    return tuple(cfg.under_served.conditions or cfg.economic_activity.elasticities_inactive_sick)


__all__ = ["boosted_conditions", "plant_under_served_wards", "under_served_truth"]
