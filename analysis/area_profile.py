"""Small-area profiles: where more people have a condition, are more people out of work?

QOF prevalence is published per GP practice, and census economic activity per LSOA. Practices'
patients live in many LSOAs, so each LSOA's prevalence is the average of its residents'
practices' prevalences, weighted by how many of its residents each practice has registered
(NHS Digital's "patients registered at a GP practice" by LSOA). Then, across LSOAs,

    log(rate) = sum_c beta_c * log(prevalence_c) + local-authority fixed effect + error

for two rates (economic inactivity through long-term sickness or disability, and
unemployment). beta_c is an elasticity: a 1% higher prevalence of condition c goes with roughly a
beta_c% higher rate, holding the other conditions and the local authority fixed. Errors are
heteroskedasticity-robust (HC3) because small LSOAs have noisier rates. This is ecological: it
describes areas, not people.

A study area with too few LSOAs for the model (a small synthetic region, a single town) is not an
error: each model that cannot be fitted is reported as "not estimable here, because ..." in the
analysis's note output, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.area_data import (
    AREA_CONDITIONS,
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.charts import estimate_chart
from analysis.disclosure import Figure, ModelResult
from analysis.stage import AnalysisOutputs, NotEstimable, not_estimable_output, request_outputs
from analysis.vocabulary import AREA_OUTCOMES
from ig_policies.errors import InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

AreaOutcome = Literal["inactive_sick_rate", "unemployment_rate"]
AREA_RATES: tuple[AreaOutcome, ...] = ("inactive_sick_rate", "unemployment_rate")

#: Fewest residual degrees of freedom a model is fitted with (disclosure control's own minimum
#: for regressions is of the same size): fewer, and the robust errors mean little.
MIN_RESIDUAL_DF = 10
#: Fewest LSOAs with a positive prevalence for a condition to enter the model.
MIN_CONDITION_LSOAS = 10


def apportion_prevalence(qof: pd.DataFrame, registrations: pd.DataFrame) -> pd.DataFrame:
    """LSOA-level prevalence of each condition from practice-level QOF prevalence.

    ``qof``: ``practice_code``, ``condition``, ``register``, ``list_size`` (practice rows).
    ``registrations``: ``practice_code``, ``lsoa21cd``, ``patients``.
    Returns one row per LSOA: ``lsoa21cd``, ``registered_patients`` and one prevalence column
    per condition (a proportion). Practices missing from QOF are left out of the weights of the
    conditions they lack, so a missing practice does not pull an LSOA's prevalence towards zero.
    """
    prev = qof.assign(prevalence=qof["register"] / qof["list_size"].where(qof["list_size"] > 0))
    prev = prev.dropna(subset=["prevalence"])
    wide = prev.pivot_table(index="practice_code", columns="condition", values="prevalence", aggfunc="mean")
    reg = registrations.groupby(["lsoa21cd", "practice_code"], as_index=False)["patients"].sum()
    reg = reg[reg["patients"] > 0]
    out = reg.groupby("lsoa21cd")["patients"].sum().rename("registered_patients").to_frame()
    joined = reg.merge(wide, left_on="practice_code", right_index=True, how="left")
    for cond in wide.columns:
        known = joined[cond].notna()
        num = (
            (joined.loc[known, cond] * joined.loc[known, "patients"])
            .groupby(joined.loc[known, "lsoa21cd"])
            .sum()
        )
        den = joined.loc[known, "patients"].groupby(joined.loc[known, "lsoa21cd"]).sum()
        out[cond] = num / den
    out.columns.name = None
    return out.reset_index()


def area_rates(census: pd.DataFrame) -> pd.DataFrame:
    """The two census rates per LSOA, both as shares of usual residents aged 16 and over.

    This is how census table TS066 reports every economic activity category; using one
    denominator for both rates keeps the two elasticities comparable (dividing unemployment by
    the economically active instead would let health-related inactivity leak into the
    unemployment rate through its denominator).
    """
    out = census[["lsoa21cd"]].copy()
    residents = census["residents_16_plus"].astype(float).where(census["residents_16_plus"] > 0)
    out["inactive_sick_rate"] = census["inactive_sick"].astype(float) / residents
    out["unemployment_rate"] = census["unemployed"].astype(float) / residents
    out["residents_16_plus"] = residents
    return out


def build_area_profile(
    census: pd.DataFrame, prevalence: pd.DataFrame, lsoa_lookup: pd.DataFrame
) -> pd.DataFrame:
    """One row per LSOA with its local authority, both rates and every condition's prevalence."""
    rates = area_rates(census)
    lad = lsoa_lookup[["lsoa21cd", "lad22cd"]].drop_duplicates("lsoa21cd")
    return rates.merge(prevalence, on="lsoa21cd", how="inner").merge(lad, on="lsoa21cd", how="inner")


@dataclass(frozen=True)
class ElasticityModel:
    """The fitted area model for one rate."""

    outcome: str
    elasticities: pd.DataFrame  # condition, elasticity, std_error, ci_low, ci_high, p_value, significant
    fit: dict[str, float] = field(default_factory=dict)
    sentences: tuple[str, ...] = ()

    def significant_conditions(self) -> list[str]:
        return self.elasticities.loc[self.elasticities["significant"], "condition"].tolist()


def fit_elasticities(
    profile: pd.DataFrame,
    outcome: AreaOutcome,
    conditions: Sequence[str],
    alpha: float = 0.05,
) -> ElasticityModel:
    """Regress log(rate) on log(prevalences) with local-authority fixed effects and HC3 errors.

    LSOAs with a zero rate or a zero prevalence are left out (their log is undefined); the
    number left out is reported in ``fit``. "Significant" means p < ``alpha`` (robust errors,
    normal reference distribution, as statsmodels' ``OLS(...).fit(cov_type="HC3")``).
    Raises ``NotEstimable`` when the LSOAs are too few to tell the conditions and the local
    authorities apart, or leave fewer than ``MIN_RESIDUAL_DF`` residual degrees of freedom.

    The local-authority effects are absorbed by subtracting each authority's means (the
    Frisch-Waugh-Lovell theorem gives the same elasticities and residuals as the model with one
    dummy per authority), and the HC3 leverages are those of the full model: the authority part
    ``1/n_LA`` plus the leverage of the demeaned prevalences. This gives statsmodels' numbers
    exactly while staying fast for England's 33,000 LSOAs and 309 authorities, where the model
    with dummies would need an SVD of a 33,000 x 325 matrix several times over.
    """
    from scipy import stats

    cols = [outcome, *conditions, "lad22cd"]
    df = profile[cols].dropna()
    positive = (df[[outcome, *conditions]] > 0).all(axis=1)
    dropped = int((~positive).sum()) + (len(profile) - len(df))
    df = df[positive]
    what = AREA_OUTCOMES.get(outcome, outcome)
    part = f"the model of the {what}"
    if len(df) <= len(conditions) + MIN_RESIDUAL_DF:
        raise NotEstimable(
            f"only {len(df)} LSOAs have a positive {what} and prevalence of every condition, and a model "
            f"of {len(conditions)} conditions with local-authority effects needs more than "
            f"{len(conditions) + MIN_RESIDUAL_DF}; it needs data covering more LSOAs",
            part,
        )
    groups = pd.factorize(df["lad22cd"].astype(str))[0]
    n, n_groups = len(df), int(groups.max()) + 1
    y = np.log(df[outcome].to_numpy(dtype=float))
    x = np.log(df[list(conditions)].to_numpy(dtype=float))
    size = np.bincount(groups, minlength=n_groups).astype(float)

    def within(values: np.ndarray) -> np.ndarray:
        sums = np.stack([np.bincount(groups, weights=v, minlength=n_groups) for v in values.T], axis=1)
        return values - (sums / size[:, None])[groups]

    yt, xt = within(y[:, None])[:, 0], within(x)
    scale = np.sqrt((xt**2).sum(axis=0))
    singular = np.linalg.svd(xt / np.where(scale > 0, scale, 1.0), compute_uv=False)
    rank_x = int((singular > singular.max(initial=0.0) * max(xt.shape) * np.finfo(float).eps).sum())
    parameters = n_groups + len(conditions)
    rank = n_groups + rank_x
    if rank < parameters or n - rank < MIN_RESIDUAL_DF:
        raise NotEstimable(
            f"the {len(conditions)} conditions' prevalences and the local authorities cannot be told apart "
            f"in {n} LSOAs (the model has {parameters} parameters, of which {rank} can be "
            f"estimated, and needs at least {MIN_RESIDUAL_DF} LSOAs more than that); it needs data covering "
            "more LSOAs, or fewer conditions",
            part,
        )
    xtx_inv = np.linalg.inv(xt.T @ xt)
    beta = xtx_inv @ (xt.T @ yt)
    resid = yt - xt @ beta
    leverage = 1.0 / size[groups] + np.einsum("ij,jk,ik->i", xt, xtx_inv, xt)
    meat = xt.T @ (xt * (resid / (1.0 - leverage))[:, None] ** 2)
    cov = xtx_inv @ meat @ xtx_inv
    se = np.sqrt(np.diag(cov))
    z = stats.norm.ppf(1 - alpha / 2)
    p_values = 2 * stats.norm.sf(np.abs(beta / se))
    rows = []
    for j, c in enumerate(conditions):
        rows.append(
            {
                "condition": c,
                "elasticity": float(beta[j]),
                "std_error": float(se[j]),
                "ci_low": float(beta[j] - z * se[j]),
                "ci_high": float(beta[j] + z * se[j]),
                "p_value": float(p_values[j]),
                "significant": bool(p_values[j] < alpha),
                "percent_change_per_1pct": (1.01 ** float(beta[j]) - 1) * 100,
            }
        )
    table = pd.DataFrame(rows)
    residual_df = n - rank
    ssr, sst = float(resid @ resid), float(((y - y.mean()) ** 2).sum())
    r_squared = 1 - ssr / sst if sst > 0 else float("nan")
    stats_ = {
        "lsoas": float(n),
        "lsoas_left_out": float(dropped),
        "local_authorities": float(n_groups),
        "parameters": float(parameters),
        "residual_df": float(residual_df),
        "r_squared": r_squared,
        "adj_r_squared": 1 - (n - 1) / residual_df * (1 - r_squared),
    }
    sentences = tuple(_describe(r, outcome) for r in table.itertuples())
    return ElasticityModel(outcome, table, stats_, sentences)


def _describe(row: object, outcome: str) -> str:
    name = str(row.condition).replace("_", " ")  # type: ignore[attr-defined]
    pct = row.percent_change_per_1pct  # type: ignore[attr-defined]
    lo = (1.01**row.ci_low - 1) * 100  # type: ignore[attr-defined]
    hi = (1.01**row.ci_high - 1) * 100  # type: ignore[attr-defined]
    direction = "higher" if pct >= 0 else "lower"
    tail = "" if row.significant else " (not statistically significant)"  # type: ignore[attr-defined]
    what = AREA_OUTCOMES.get(outcome, outcome)
    return (
        f"A 1% higher prevalence of {name} goes with a {abs(pct):.2f}% {direction} {what} "
        f"(95% CI {lo:.2f}% to {hi:.2f}%){tail}."
    )


def usable_conditions(
    profile: pd.DataFrame, candidates: Sequence[str], min_lsoas: int = MIN_CONDITION_LSOAS
) -> list[str]:
    """Conditions with a positive prevalence in enough LSOAs to be estimated."""
    out = []
    for c in candidates:
        if c in profile.columns and int((profile[c] > 0).sum()) >= min_lsoas and profile[c].std() > 0:
            out.append(c)
    return out


AREA_SOURCE = "reference/census_economic_activity"


def area_outputs(models: Sequence[ElasticityModel], residents: int) -> list[tuple[str, Any]]:
    """Each elasticity model as a regression result and a coefficient plot.

    The data are published area aggregates, not records of people; ``n_people`` is the number
    of residents aged 16+ in the LSOAs the model uses.
    """
    out: list[tuple[str, Any]] = []
    for m in models:
        t = m.elasticities
        coefficients = pd.DataFrame(
            {
                "term": t["condition"],
                "estimate": t["elasticity"],
                "ci_lower": t["ci_low"],
                "ci_upper": t["ci_high"],
                "p_value": t["p_value"],
                "n_people": int(residents),
                "std_error": t["std_error"],
                "relative_change": t["percent_change_per_1pct"],
            }
        )
        what = AREA_OUTCOMES[m.outcome]
        significant = m.significant_conditions()
        result = ModelResult(
            coefficients=coefficients,
            n_obs=int(m.fit["lsoas"]),
            n_people=int(residents),
            source=AREA_SOURCE,
            title=f"Condition prevalence and the {what} across LSOAs (elasticities)",
            residual_df=float(m.fit["residual_df"]),
            kind="regression",
            statistics={k: m.fit[k] for k in ("r_squared", "adj_r_squared", "local_authorities")},
            population="LSOAs of the study area (census 2021, QOF prevalence apportioned by registered patients)",
            description=(
                "OLS of log(rate) on log(prevalence) with local-authority fixed effects and HC3 robust errors; "
                "relative_change = % change in the rate for a 1% higher prevalence.\n"
                + (
                    "Significant: " + ", ".join(significant)
                    if significant
                    else "No condition is significant."
                )
                + "\n"
                + "\n".join(m.sentences)
            ),
        )
        name = f"area-profile-{m.outcome.replace('_', '-')}"
        out.append((name, result))
        title = f"Elasticity of the {what} with respect to prevalence"

        def render(protected: pd.DataFrame, title: str = title) -> bytes:
            return estimate_chart(protected, title, "elasticity (% change in rate per 1% prevalence)", 0.0)

        out.append((f"{name}-chart", Figure(table=result, title=title, render=render)))
    return out


def run_area_profile(
    workspace: Workspace,
    engine: Any,
    actor: str,
    conditions: Sequence[str] | None = None,
    justification: str = "Small-area profile of health and economic activity for the city region.",
) -> AnalysisOutputs:
    """The area-profile stage (researcher): apportion QOF prevalence, fit both elasticity models."""
    ref = workspace.reference
    paths = {
        "census": ref / "census_economic_activity.csv",
        "qof": ref / "qof_prevalence.csv",
        "registrations": ref / "gp_registrations_lsoa.csv",
        "lookup": ref / "lsoa_lookup.csv",
    }
    with engine.step(actor, Role.RESEARCHER, "area_profile", analysis=Analysis.AREA_PROFILE) as step:
        census = load_census_economic_activity(paths["census"])
        prevalence = apportion_prevalence(
            load_qof_prevalence(paths["qof"]), load_gp_registrations(paths["registrations"])
        )
        profile = build_area_profile(census, prevalence, load_lsoa_lookup(paths["lookup"]))
        wanted = list(conditions) if conditions else list(AREA_CONDITIONS)
        usable = usable_conditions(profile, wanted)
        if profile.empty:
            raise InputError(
                str(paths["census"]),
                "no LSOA has census, QOF and registration data",
                hint="check that the census, QOF and registration files cover the same areas (LSOA codes, practice codes).",
            )
        models: list[ElasticityModel] = []
        not_estimable: list[NotEstimable] = []
        for outcome in AREA_RATES:
            try:
                if not usable:
                    raise NotEstimable(
                        f"no condition has a varying, positive prevalence in at least {MIN_CONDITION_LSOAS} "
                        f"of the {len(profile)} LSOAs; it needs data covering more LSOAs",
                        f"the model of the {AREA_OUTCOMES[outcome]}",
                    )
                models.append(fit_elasticities(profile, outcome, usable))
            except NotEstimable as exc:
                not_estimable.append(exc)
        residents = int(profile["residents_16_plus"].sum())
        outputs = area_outputs(models, residents)
        if not_estimable:
            outputs.append(not_estimable_output("area_profile", AREA_SOURCE, not_estimable))
        requests, folders = request_outputs(workspace, engine, actor, outputs, justification)
        step.inputs(*paths.values())
        step.outputs(*folders)
        step.counts(lsoas=len(profile), outputs_requested=len(requests))
        step.detail(
            conditions=usable,
            significant={m.outcome: m.significant_conditions() for m in models},
            not_estimable=[e.sentence for e in not_estimable],
        )
    sentences: list[str] = []
    for m in models:
        sig = m.significant_conditions()
        sentences.append(
            f"{AREA_OUTCOMES[m.outcome].capitalize()}: significant conditions: {', '.join(sig) if sig else 'none'}."
        )
        sentences.extend(
            s for s, r in zip(m.sentences, m.elasticities.itertuples(), strict=True) if r.significant
        )
    sentences.extend(e.sentence for e in not_estimable)
    return AnalysisOutputs("area_profile", requests, folders, tuple(sentences))


__all__ = [
    "AREA_RATES",
    "MIN_RESIDUAL_DF",
    "ElasticityModel",
    "apportion_prevalence",
    "area_rates",
    "build_area_profile",
    "fit_elasticities",
    "run_area_profile",
    "usable_conditions",
]
