"""Factors associated with success: who gets a job (or keeps it 26 weeks) after enrolling?

A logistic regression of the configured outcome on demographics, health conditions, programme
and area deprivation gives adjusted odds ratios: "people with depression had 0.7 times the odds
of a job start, other things equal". Two models are fitted when GP data are used: one on all
clients with self-reported conditions, and one on linked clients that adds GP-recorded
conditions (weighted by inverse probability of linkage, so the linked subset stands for the whole
caseload). Standard errors are clustered on the person, because one person may enrol more than
once and those enrolments are not independent.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analysis.charts import estimate_chart
from analysis.clients import condition_columns, person_ids
from analysis.disclosure import Figure, ModelResult
from analysis.linkage_weights import linkage_weights
from analysis.stage import CLIENTS_SOURCE, AnalysisOutputs, read_clients, request_outputs
from analysis.vocabulary import EMPLOYMENT_OUTCOMES
from ig_policies.config_file import load_config_file
from ig_policies.errors import ConfigError, InputError
from ig_policies.policy import Analysis, Role
from ig_policies.workspace import Workspace

Outcome = Literal["job_start", "sustained_26_weeks"]
#: Baselines used when the config names none and they occur in the data: the usual reference
#: groups of UK labour-market analyses (and of the synthetic test bed's planted odds ratios).
PREFERRED_REFERENCE: dict[str, str] = {
    "age_band": "25-34",
    "sex": "M",
    "ethnicity": "White",
    "imd_quintile": "3",
    "programme": "ways_to_work",
}


class SuccessConfig(BaseModel):
    """How the success model is specified (YAML, e.g. ``success.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome = Field("job_start", description="the success outcome modelled")
    covariates: list[str] = Field(
        default_factory=lambda: ["age_band", "sex", "ethnicity", "imd_quintile", "programme"],
        description="categorical client characteristics adjusted for",
    )
    self_reported_conditions: bool = True
    gp_conditions: bool = Field(
        True, description="also fit a model on linked clients with GP-recorded conditions"
    )
    linkage_weights: bool = Field(
        True, description="weight the linked-clients model by inverse probability of linkage"
    )
    reference: dict[str, str] = Field(
        default_factory=dict,
        description="reference category per covariate (default: PREFERRED_REFERENCE if present, else the commonest)",
    )
    among_job_starts: bool = Field(
        False,
        description="model sustained_26_weeks only among clients who started a job (job retention, not placement)",
    )
    min_people_with_condition: int = Field(
        10, ge=1, description="conditions held by fewer people (or all but fewer) are left out of the model"
    )


def load_success_config(path: str | Path | None) -> SuccessConfig:
    """The success config from YAML (or the defaults); errors name the file and key."""
    if path is None:
        return SuccessConfig()
    return load_config_file(
        path,
        SuccessConfig,
        "the success-model config",
        hint="outcome must be job_start or sustained_26_weeks; see SuccessConfig for the other keys.",
    )


@dataclass(frozen=True)
class SuccessModel:
    """One fitted model: odds ratios and how well it fits."""

    name: str
    outcome: str
    odds_ratios: pd.DataFrame  # term, variable, level, odds_ratio, ci_low, ci_high, p_value, n_people
    fit: dict[str, float] = field(default_factory=dict)
    sentences: tuple[str, ...] = ()


_TERM = re.compile(r"^C\((?P<var>[^,)]+)(?:,[^)]*\))?\)?\[T\.(?P<level>.*)\]$")


def _prepare(
    clients: pd.DataFrame, outcome: str, covariates: Sequence[str], flags: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    if outcome not in clients.columns:
        raise InputError(
            "analysis/clients.parquet",
            f"there is no '{outcome}' column to model",
            hint="rebuild the research dataset, or choose an outcome it has (job_start, sustained_26_weeks).",
            column=outcome,
        )
    df = pd.DataFrame(index=clients.index)
    df["y"] = clients[outcome].astype("boolean").fillna(False).astype(int)
    df["_person"] = person_ids(clients)
    used_cov = []
    for c in covariates:
        if c in clients.columns:
            s = clients[c].astype("string").fillna("Unknown")
            if s.nunique() > 1:
                df[c] = s
                used_cov.append(c)
    used_flags = []
    for c in flags:
        s = clients[c].astype("boolean").fillna(False).astype(int)
        people_with = df.loc[s == 1, "_person"].nunique()
        people_without = df.loc[s == 0, "_person"].nunique()
        if min(people_with, people_without) >= 1:
            df[c] = s
            used_flags.append(c)
    return df, used_cov, used_flags


def fit_success_model(
    clients: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str],
    condition_flags: Sequence[str],
    reference: dict[str, str] | None = None,
    weights: pd.Series | None = None,
    name: str = "all_clients",
    min_people_with_condition: int = 1,
) -> SuccessModel:
    """Logistic regression of ``outcome`` with person-clustered errors; returns odds ratios.

    Categorical covariates use the configured reference category or, by default, the usual one
    (``PREFERRED_REFERENCE``) or else the commonest (the most precisely estimated baseline). Condition flags held by fewer than
    ``min_people_with_condition`` people (or lacked by fewer) are left out: their odds ratio
    could not be estimated and could not be released.
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import SpecificationWarning

    df, covs, flags = _prepare(clients, outcome, covariates, condition_flags)
    flags = [
        f
        for f in flags
        if min(df.loc[df[f] == 1, "_person"].nunique(), df.loc[df[f] == 0, "_person"].nunique())
        >= min_people_with_condition
    ]
    reference = reference or {}
    parts = []
    for c in covs:
        preferred = PREFERRED_REFERENCE.get(c)
        default = preferred if preferred in set(df[c]) else df[c].value_counts().idxmax()
        ref = reference.get(c) or default
        if ref not in set(df[c]):
            raise ConfigError(
                f"the reference category '{ref}' for {c} does not occur in the data.",
                hint=f"choose one of: {', '.join(sorted(df[c].unique()))}.",
            )
        parts.append(f"C({c}, Treatment(reference={ref!r}))")
    parts.extend(flags)
    formula = "y ~ " + (" + ".join(parts) if parts else "1")
    groups = pd.factorize(df["_person"])[0]
    kwargs: dict[str, Any] = {}
    if weights is not None:
        w = weights.reindex(df.index).astype(float)
        keep = w.notna() & (w > 0)
        df, groups, w = df[keep], groups[keep.to_numpy()], w[keep]
        kwargs["var_weights"] = w.to_numpy()
    model = smf.glm(formula, data=df, family=sm.families.Binomial(), **kwargs)
    with warnings.catch_warnings():
        # with inverse-probability weights statsmodels warns that some *other* statistics of a
        # weighted clustered fit are not supported; the sandwich covariance used here is.
        warnings.simplefilter("ignore", SpecificationWarning)
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    null = smf.glm("y ~ 1", data=df, family=sm.families.Binomial(), **kwargs).fit()

    ci = fit.conf_int()
    rows = []
    n_people = df["_person"].nunique()
    for term in fit.params.index:
        var, level = _split_term(term)
        if term == "Intercept":
            members = df["_person"]
        elif level is None:
            members = df.loc[df[var] == 1, "_person"]
        else:
            members = df.loc[df[var] == level, "_person"]
        rows.append(
            {
                "term": term if term == "Intercept" else (f"{var}: {level}" if level is not None else var),
                "n_events": int(df.loc[members.index][df.loc[members.index, "y"] == 1]["_person"].nunique()),
                "variable": var,
                "level": level
                if level is not None
                else ("(baseline odds)" if term == "Intercept" else "yes"),
                "odds_ratio": math.exp(fit.params[term]),
                "ci_low": math.exp(ci.loc[term, 0]),
                "ci_high": math.exp(ci.loc[term, 1]),
                "p_value": float(fit.pvalues[term]),
                "n_people": int(members.nunique()),
                "coefficient": float(fit.params[term]),
                "std_error": float(fit.bse[term]),
            }
        )
    table = pd.DataFrame(rows)
    events = int(df.loc[df["y"] == 1, "_person"].nunique())
    ll, ll0 = float(fit.llf), float(null.llf)
    k = len(fit.params)
    fit_stats = {
        "n_people": float(n_people),
        "n_enrolments": float(len(df)),
        "people_with_outcome": float(events),
        "parameters": float(k),
        "residual_df": float(n_people - k),
        "log_likelihood": ll,
        "null_log_likelihood": ll0,
        "mcfadden_r2": 1 - ll / ll0 if ll0 != 0 else float("nan"),
        "aic": float(2 * k - 2 * ll),
        "c_statistic": _c_statistic(df["y"].to_numpy(), np.asarray(fit.predict(df))),
    }
    sentences = tuple(_describe(r, outcome) for r in table.itertuples() if r.term != "Intercept")
    return SuccessModel(name, outcome, table, fit_stats, sentences)


def _split_term(term: str) -> tuple[str, str | None]:
    if term == "Intercept":
        return "Intercept", None
    m = _TERM.match(term)
    if m:
        return m.group("var").strip(), m.group("level")
    return term, None


def _c_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (probability a success is ranked above a non-success)."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _describe(row: Any, outcome: str) -> str:
    what = EMPLOYMENT_OUTCOMES.get(outcome, outcome)
    who = _subject(row.variable, row.level)
    figures = f"{row.odds_ratio:.2f} times the odds of {what} ({row.ci_low:.2f}–{row.ci_high:.2f})"
    if row.ci_high < 1:
        verdict = "lower"
    elif row.ci_low > 1:
        verdict = "higher"
    else:
        return f"{who}: no clear difference, {figures}."
    return f"{who} had {verdict} odds: {figures}, other things equal."


def _subject(variable: str, level: str) -> str:
    if variable.startswith("sr_"):
        return f"People who reported {variable[3:].replace('_', ' ')}"
    if variable.startswith("gp_"):
        return f"People with GP-recorded {variable[3:].replace('_', ' ')}"
    if variable == "sex" and level in ("F", "M"):
        return "Women" if level == "F" else "Men"
    if variable == "ethnicity":
        return f"People of {level} ethnicity"
    if variable == "programme":
        return f"People on {level.replace('_', ' ').title()}"
    words = {"age_band": "aged", "imd_quintile": "in IMD quintile", "sex": "of sex"}
    return f"People {words.get(variable, variable)} {level.replace('-', '–')}"


def fit_success_models(clients: pd.DataFrame, config: SuccessConfig) -> list[SuccessModel]:
    """The configured models: all clients (self-reported conditions) and, if asked, linked clients.

    ``clients`` is one row per enrolment; clustering by person handles repeat enrolments.
    """
    if config.among_job_starts:
        if config.outcome != "sustained_26_weeks":
            raise ConfigError(
                "among_job_starts applies only to the outcome sustained_26_weeks.",
                hint="set outcome: sustained_26_weeks, or remove among_job_starts",
            )
        clients = clients[clients["job_start"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    sr = condition_columns(clients, "sr_") if config.self_reported_conditions else []
    models = [
        fit_success_model(
            clients,
            config.outcome,
            config.covariates,
            sr,
            config.reference,
            name="all_clients",
            min_people_with_condition=config.min_people_with_condition,
        )
    ]
    gp = condition_columns(clients, "gp_")
    if config.gp_conditions and gp and "linked" in clients.columns:
        linked_mask = clients["linked"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if linked_mask.sum() > 0:
            weights = None
            if config.linkage_weights:
                if (
                    "linkage_weight" in clients.columns
                    and clients.loc[linked_mask, "linkage_weight"].notna().all()
                ):
                    weights = clients["linkage_weight"]
                else:
                    weights = linkage_weights(clients)
            linked = clients[linked_mask]
            models.append(
                fit_success_model(
                    linked,
                    config.outcome,
                    config.covariates,
                    [*sr, *gp],
                    config.reference,
                    weights=None if weights is None else weights[linked_mask],
                    name="linked_clients",
                    min_people_with_condition=config.min_people_with_condition,
                )
            )
    return models


def success_outputs(models: Sequence[SuccessModel], min_people: int) -> list[tuple[str, Any]]:
    """Each model as a disclosure-control regression result plus a coefficient plot.

    ``estimate`` is the odds ratio (CI on the same scale); ``coefficient``/``std_error`` are on the
    log-odds scale. Rows carry the people with the characteristic (``n_people``) and those of them
    with the outcome (``n_events``), so a coefficient resting on a handful of people or successes
    is withheld.
    """
    out: list[tuple[str, Any]] = []
    for m in models:
        t = m.odds_ratios
        coefficients = pd.DataFrame(
            {
                "term": t["term"],
                "estimate": t["odds_ratio"],
                "ci_lower": t["ci_low"],
                "ci_upper": t["ci_high"],
                "p_value": t["p_value"],
                "n_people": t["n_people"].astype(int),
                "n_events": t["n_events"].astype(int),
                "coefficient": t["coefficient"],
                "std_error": t["std_error"],
            }
        )
        who = (
            "all clients"
            if m.name == "all_clients"
            else "linked clients (weighted by inverse probability of linkage)"
        )
        what = EMPLOYMENT_OUTCOMES.get(m.outcome, m.outcome)
        sentences = [
            sent
            for sent, r in zip(m.sentences, t[t["term"] != "Intercept"].itertuples(), strict=True)
            if r.n_people >= min_people and r.n_events >= min_people
        ]
        result = ModelResult(
            coefficients=coefficients,
            n_obs=int(m.fit["n_enrolments"]),
            n_people=int(m.fit["n_people"]),
            source=CLIENTS_SOURCE,
            title=f"Factors associated with {what}: {who}",
            residual_df=float(m.fit["residual_df"]),
            kind="regression",
            statistics={
                k: m.fit[k]
                for k in ("log_likelihood", "null_log_likelihood", "mcfadden_r2", "aic", "c_statistic")
            },
            population=who,
            description=(
                "Logistic regression, odds ratios with 95% CIs from standard errors clustered on the person.\n"
                + "\n".join(sentences)
            ),
        )
        name = f"success-{m.outcome.replace('_', '-')}-{m.name.replace('_', '-')}"
        out.append((name, result))
        plotted = ModelResult(
            coefficients=coefficients[coefficients["term"] != "Intercept"],
            n_obs=result.n_obs,
            n_people=result.n_people,
            source=CLIENTS_SOURCE,
            title=result.title,
            residual_df=result.residual_df,
            kind="regression",
        )
        title = f"Odds of {what}: {who}"

        def render(protected: pd.DataFrame, title: str = title) -> bytes:
            return estimate_chart(protected, title, "odds ratio (1 = no difference)", 1.0, log_scale=True)

        out.append((f"{name}-chart", Figure(table=plotted, title=title, render=render)))
    return out


def run_success_factors(
    workspace: Workspace,
    engine: Any,
    actor: str,
    config: SuccessConfig | None = None,
    justification: str = "Factors associated with employment outcomes, for the programme evaluation.",
) -> AnalysisOutputs:
    """The success-factors stage: fit the configured models and request their outputs (researcher)."""
    config = config or SuccessConfig()
    path = workspace.analysis / "clients.parquet"
    with engine.step(
        actor, Role.RESEARCHER, "success_factors", analysis=Analysis.SUCCESS_FACTORS, reads_linked_data=True
    ) as step:
        clients = read_clients(workspace)
        models = fit_success_models(clients, config)
        requests, folders = request_outputs(
            workspace,
            engine,
            actor,
            success_outputs(models, engine.policy.outputs.min_cell_count),
            justification,
        )
        step.inputs(path)
        step.outputs(*folders)
        step.counts(enrolments=len(clients), models=len(models), outputs_requested=len(requests))
        step.detail(outcome=config.outcome, models=[m.name for m in models])
    min_people = engine.policy.outputs.min_cell_count
    sentences = []
    for m in models:
        rows = m.odds_ratios[m.odds_ratios["term"] != "Intercept"]
        sentences.append(f"[{m.name}] n = {int(m.fit['n_people'])} people")
        sentences.extend(
            s
            for s, r in zip(m.sentences, rows.itertuples(), strict=True)
            if r.n_people >= min_people and r.n_events >= min_people
        )
    return AnalysisOutputs("success_factors", requests, folders, tuple(sentences))


__all__ = [
    "SuccessConfig",
    "SuccessModel",
    "fit_success_model",
    "fit_success_models",
    "load_success_config",
    "run_success_factors",
    "success_outputs",
]
