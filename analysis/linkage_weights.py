"""Inverse-probability-of-linkage weights: letting linked clients stand in for all clients.

Linkage is never perfect and misses some groups more than others (people without an NHS number on
the programme's form, names recorded inconsistently), so analyses of GP-recorded data, which use
linked clients only, would over-represent the groups that link well. Weighting each linked client
by the inverse of their probability of being linked, from a logistic model on their
characteristics, makes the linked subset resemble all clients on those characteristics. The
research dataset stores the weights (``clients.linkage_weight``); the success model computes them
the same way when a clients table lacks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Client characteristics the linkage model adjusts for (those present and varying are used).
LINKAGE_MODEL_TERMS: tuple[str, ...] = ("age_band", "sex", "ethnicity", "imd_quintile", "programme")
#: The model is fitted only with at least this many clients per parameter; with fewer it would
#: chase noise, and every linked client gets the overall rate's weight instead.
CLIENTS_PER_PARAMETER = 20
#: Probabilities of linkage are bounded below by this, so no client weighs more than 50 times
#: the average (a handful of people must not dominate a weighted analysis).
MIN_PROBABILITY = 0.02


def linkage_weights(clients: pd.DataFrame, terms: Sequence[str] = LINKAGE_MODEL_TERMS) -> pd.Series:
    """Stabilised inverse-probability-of-linkage weights, ``P(linked) / p_i``; NaN for unlinked rows.

    Stabilising by the overall linkage rate keeps the weights' mean near 1, so a weighted fit's
    log-likelihood and AIC stay on the scale of the people actually analysed. Missing
    characteristics are their own category ("Unknown"). With too few clients for the model, no
    variation in linkage, or a model that cannot be fitted (perfect separation), every linked
    client's weight is 1.
    """
    import statsmodels.api as sm

    linked = clients["linked"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    weights = pd.Series(np.nan, index=clients.index, dtype=float, name="linkage_weight")
    rate = float(linked.mean()) if len(linked) else 0.0
    if rate == 0:
        return weights
    used = [t for t in terms if t in clients.columns and clients[t].nunique(dropna=True) > 1]
    covariates = pd.DataFrame(
        {t: clients[t].astype("string").fillna("Unknown") for t in used}, index=clients.index
    )
    X = pd.get_dummies(covariates, drop_first=True, dtype=float)
    X.insert(0, "const", 1.0)
    p = pd.Series(rate, index=clients.index)
    if rate < 1 and used and len(clients) >= CLIENTS_PER_PARAMETER * X.shape[1]:
        try:
            fit = sm.GLM(linked.astype(float), X, family=sm.families.Binomial()).fit()
            p = pd.Series(np.asarray(fit.predict(X)), index=clients.index)
        except Exception:  # perfect separation or a singular design: fall back to the overall rate
            p = pd.Series(rate, index=clients.index)
    weights[linked] = (rate / p.clip(lower=MIN_PROBABILITY))[linked]
    return weights


__all__ = ["LINKAGE_MODEL_TERMS", "linkage_weights"]
