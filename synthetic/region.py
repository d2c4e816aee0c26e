"""``generate_region``: the whole synthetic city region, written into a workspace.

Order matters only for the random streams: each part of the generator draws from its own stream
derived from the seed, so changing how one part works does not reshuffle all the others.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ig_policies.errors import ConfigError
from ig_policies.workspace import Workspace, atomic_path, make_zone_folder, write_json
from synthetic import activity as activity_mod
from synthetic import employment, reference, representation, targeting
from synthetic.config import CONDITIONS, MEASURES, PROGRAMMES, SynthConfig
from synthetic.geography import build_region
from synthetic.population import Population, build_population, month_index
from synthetic.tables import write_delimited, write_table

GENERATOR_VERSION = 1
MIN_PEOPLE = 1000
MAX_PEOPLE = 20_000_000

#: The reference category of every planted categorical odds ratio: what an analysis must use as
#: its baseline to find the recorded values (``analysis.success.PREFERRED_REFERENCE`` uses the
#: same). Against another baseline the odds ratios are ratios of these: the job-start odds ratio
#: of ages 50-64 against 16-24 is 0.6 / 1.2 = 0.5, not 0.6.
PLANTED_REFERENCE: dict[str, str] = {
    "age_band": "25-34",
    "ethnicity": "White",
    "imd_quintile": "3",
    "economic_status": "inactive_other",
    "programme": "ways_to_work",
}

# independent random streams
_GEOGRAPHY, _POPULATION, _ENROLMENT, _HEALTH_RECORDS, _UNDER_SERVED = 1, 2, 3, 4, 5

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SynthResult:
    """What ``generate_region`` wrote: file paths by name and headline counts."""

    workspace: Path
    paths: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def outputs(self) -> list[tuple[str, Path]]:
        """(label, path) pairs for the CLI's closing summary."""
        return [
            ("Health extracts", self.workspace / "landing" / "health"),
            ("Employment-support extracts", self.workspace / "landing" / "employment"),
            ("Area reference data", self.workspace / "reference"),
            ("Ground truth (tests and evaluation only)", self.workspace / "truth"),
        ]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def generate_region(
    workspace: Workspace,
    people: int,
    seed: int,
    config: SynthConfig | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SynthResult:
    """Generate residents, their health records, two employment-support extracts, area data and
    the truth behind them into ``workspace``. Same (people, seed, config) -> byte-identical files.

    ``progress(percent_done_increment, description)`` is called as work completes (sums to 100).
    ``workers`` threads generate monthly activity (default: up to two, the files do not depend on it).
    """
    cfg = config or SynthConfig()
    if not MIN_PEOPLE <= people <= MAX_PEOPLE:
        raise ConfigError(
            f"Cannot generate {people:,} people: the generator supports {MIN_PEOPLE:,} to {MAX_PEOPLE:,}.",
            hint="use --people 10000 for tests, 200000 for the demo, 5000000 for benchmarks.",
        )
    if seed < 0:
        raise ConfigError(
            f"The seed must be zero or positive, not {seed}.", hint="pass --seed 1, for example."
        )
    tick: Progress = progress or (lambda _n, _d: None)

    tick(2, "Laying out LSOAs, practices and postcodes")
    region = build_region(people, cfg.geography, _rng(seed, _GEOGRAPHY))
    region = targeting.plant_under_served_wards(region, cfg, _rng(seed, _UNDER_SERVED))
    tick(3, "Drawing residents, conditions and economic status")
    pop = build_population(people, region, cfg, _rng(seed, _POPULATION))
    persons = pop.persons
    tick(8, "Enrolling employment-support clients")
    enr = employment.build_enrolments(persons, pop.diagnosis, cfg, _rng(seed, _ENROLMENT))

    health_rng = _rng(seed, _HEALTH_RECORDS)
    registered_rows = np.flatnonzero(persons["registered"].to_numpy())
    order = health_rng.permutation(len(registered_rows))
    patient_rows = registered_rows[order]  # patient_rows[k] is the person row of patient k+1
    patient_ids = np.char.add(
        "PAT", np.char.zfill(np.arange(1, len(patient_rows) + 1).astype(str), 8)
    ).astype(object)
    patient_of_person = np.full(len(persons), None, dtype=object)
    patient_of_person[patient_rows] = patient_ids

    ws = workspace
    health_dir = ws.landing / "health"
    employment_dir = ws.landing / "employment"
    for d in (health_dir, employment_dir, ws.reference, ws.truth):
        make_zone_folder(d)
    paths: dict[str, Path] = {}
    counts: dict[str, int] = {"persons": len(persons), "patients": len(patient_rows)}

    tick(5, "Writing health records")
    demo_cols = [
        "nhs_number", "forename", "surname", "date_of_birth", "sex", "ethnicity", "postcode", "practice_code",
        "lsoa21cd", "registration_start", "registration_end", "date_of_death",
    ]  # fmt: skip
    extra_cols = ["age_at_census", "imd_decile"]
    p = persons[demo_cols + extra_cols].take(patient_rows).reset_index(drop=True)
    missing_nhs = health_rng.random(len(p)) < cfg.registration.missing_nhs_number
    nhs = p["nhs_number"].where(~missing_nhs)
    demographics = {"patient_id": patient_ids} | {c: p[c] for c in demo_cols} | {"nhs_number": nhs}
    demographics = {c: demographics[c] for c in ["patient_id", *demo_cols]}
    paths["demographics"] = write_table(demographics, health_dir / "demographics.parquet")

    cond_frames = []
    for c in CONDITIONS:
        d = pop.diagnosis[c][patient_rows]
        has = ~np.isnat(d)
        cond_frames.append(pd.DataFrame({"k": np.flatnonzero(has), "condition": c, "diagnosis_date": d[has]}))
    cond = pd.concat(cond_frames, ignore_index=True).sort_values(["k", "condition"], kind="stable")
    paths["conditions"] = write_table(
        {
            "patient_id": patient_ids[cond["k"].to_numpy()],
            "condition": cond["condition"].to_numpy(dtype=object),
            "diagnosis_date": cond["diagnosis_date"].to_numpy(),
        },
        health_dir / "conditions.parquet",
    )
    counts["condition_rows"] = len(cond)

    nhs_values = nhs.to_numpy(dtype=object, na_value=None)
    with_nhs = np.flatnonzero(pd.notna(nhs_values))
    opted = np.sort(
        nhs_values[with_nhs[health_rng.random(len(with_nhs)) < cfg.registration.opt_out]].astype(str)
    )
    paths["opt_out"] = write_delimited(pd.DataFrame({"nhs_number": opted}), health_dir / "opt_out.csv")
    counts["opt_out"] = len(opted)

    tick(4, "Writing employment-support extracts")
    paths["ways_to_work"] = write_delimited(
        enr.ways_to_work, employment_dir / "ways_to_work.csv", sep=",", encoding="utf-8"
    )
    paths["health_into_work"] = write_delimited(
        enr.health_into_work,
        employment_dir / "health_into_work.csv",
        sep=";",
        encoding="cp1252",
        line_end="\r\n",
    )
    counts["ways_to_work_rows"] = len(enr.ways_to_work)
    counts["health_into_work_rows"] = len(enr.health_into_work)

    tick(3, "Writing area reference data")
    paths.update(reference.write_reference(ws.reference, region, persons, pop.diagnosis))

    # --- activity, chunked
    truth = enr.truth
    first_enrol = truth.groupby("person_row")["enrolment_date"].min()
    enrol_month = np.full(len(persons), 10_000, dtype=np.int64)
    enrol_month[first_enrol.index.to_numpy()] = month_index(first_enrol.to_numpy().astype("datetime64[D]"))
    diag_month = np.stack([month_index(pop.diagnosis[c][patient_rows]) for c in CONDITIONS], axis=1)
    inputs = activity_mod.ActivityInputs(
        patient_id=patient_ids,
        age=p["age_at_census"].to_numpy(),
        female=(p["sex"].to_numpy() == "F"),
        imd_decile=p["imd_decile"].to_numpy(),
        first_month=month_index(p["registration_start"].to_numpy().astype("datetime64[D]")),
        last_month=np.where(
            pd.isna(p["registration_end"]).to_numpy(),
            10_000,
            month_index(p["registration_end"].to_numpy().astype("datetime64[D]")),
        ),
        diagnosis_month=diag_month,
        enrolment_month=enrol_month[patient_rows],
    )
    tick(0, "Generating monthly activity")
    activity_share = 70.0
    n_pat = max(len(patient_rows), 1)
    activity_path = health_dir / "activity.parquet"
    with atomic_path(activity_path) as tmp:
        rows_by_measure = activity_mod.write_activity(
            inputs,
            cfg,
            seed,
            tmp,
            advance=lambda k: tick(activity_share * k / n_pat, "Generating monthly activity"),
            workers=workers if workers is not None else min(2, os.cpu_count() or 1),
        )
    paths["activity"] = activity_path
    counts["activity_rows"] = sum(rows_by_measure.values())

    tick(3, "Writing ground truth")
    paths.update(
        _write_truth(ws, persons, patient_of_person, enr, pop, cfg, seed, people, rows_by_measure, counts)
    )
    _record_under_served(ws, region, cfg)
    return SynthResult(workspace=ws.root, paths=paths, counts=counts)


def _write_truth(
    ws: Workspace,
    persons: pd.DataFrame,
    patient_of_person: np.ndarray,
    enr: employment.Enrolments,
    pop: Population,
    cfg: SynthConfig,
    seed: int,
    people: int,
    rows_by_measure: dict[str, int],
    counts: dict[str, int],
) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    truth = enr.truth
    n_enrol = np.bincount(truth["person_row"].to_numpy(), minlength=len(persons))
    first = truth.groupby("person_row")["enrolment_date"].min()
    first_date = np.full(len(persons), np.datetime64("NaT"), dtype="datetime64[D]")
    first_date[first.index.to_numpy()] = first.to_numpy().astype("datetime64[D]")
    keep = [c for c in persons.columns if c not in ("lsoa_idx", "la_idx", "practice_idx")]
    tp: dict[str, Any] = {c: persons[c] for c in keep}
    tp["patient_id"] = patient_of_person
    tp["enrolments"] = n_enrol
    tp["first_enrolment_date"] = first_date
    paths["truth_persons"] = write_table(tp, ws.truth / "persons.parquet")

    enrol_cols = [c for c in truth.columns if c != "person_row"]
    et = {c: truth[c].to_numpy() for c in enrol_cols}
    et["dataset"] = truth["programme"].to_numpy()
    et["patient_id"] = patient_of_person[truth["person_row"].to_numpy()]
    paths["truth_enrolments"] = write_table(et, ws.truth / "enrolments.parquet")

    valid = truth["defect"].isna().to_numpy()
    pat_rows = np.flatnonzero(pd.notna(patient_of_person))
    links = pd.DataFrame(
        {
            "dataset": np.concatenate(
                [
                    np.full(len(pat_rows), "health_demographics", dtype=object),
                    truth["programme"].to_numpy()[valid],
                ]
            ),
            "record_id": np.concatenate([patient_of_person[pat_rows], truth["client_ref"].to_numpy()[valid]]),
            "person_id": np.concatenate(
                [persons["person_id"].to_numpy()[pat_rows], truth["person_id"].to_numpy()[valid]]
            ),
            "source_row": np.concatenate(
                [
                    np.zeros(len(pat_rows), dtype=np.int64),
                    truth["source_row"].to_numpy()[valid].astype(np.int64),
                ]
            ),
        }
    )
    links = links.sort_values(["dataset", "record_id"], kind="stable")
    paths["truth_record_links"] = write_table(
        {c: links[c].to_numpy() for c in links.columns}, ws.truth / "record_links.parquet"
    )
    area = pop.area_truth
    paths["truth_area"] = write_table(area, ws.truth / "area_truth.parquet")

    counts["clients"] = int(enr.planted["clients"])
    counts["enrolment_rows"] = len(truth)
    planted = _planted(truth, persons, pop, enr, cfg, seed, people, rows_by_measure, counts)
    paths["planted"] = write_json(ws.truth / "planted.json", planted)
    return paths


def _record_under_served(ws: Workspace, region: Any, cfg: SynthConfig) -> None:
    """Add the planted under-served wards to ``truth/planted.json`` (kept apart from ``_planted``)."""
    path = ws.truth / "planted.json"
    planted = json.loads(path.read_text())
    planted["under_served_areas"] = targeting.under_served_truth(region, cfg)
    write_json(path, planted)


def _rate(flags: np.ndarray, among: np.ndarray | None = None) -> dict[str, float | int]:
    """Count and rate of ``flags`` among the rows where the error could happen (``among``)."""
    base = np.ones(len(flags), dtype=bool) if among is None else np.asarray(among, dtype=bool)
    n = int(base.sum())
    k = int((np.asarray(flags, dtype=bool) & base).sum())
    return {"count": k, "denominator": n, "rate": round(k / n, 6) if n else 0.0}


def _against_reference(odds: dict[str, Any]) -> dict[str, Any]:
    """Planted odds ratios as an analysis with ``PLANTED_REFERENCE`` baselines estimates them.

    The generator adds log ORs to an implicit zero, so a configuration may give the baseline
    category an odds ratio other than 1 (or leave it out: then it is 1). Dividing by the
    baseline's value records the contrasts that are estimable; with the defaults nothing changes.
    """
    out: dict[str, Any] = {}
    for variable, table in odds.items():
        reference = PLANTED_REFERENCE.get(variable)
        if isinstance(table, dict) and reference is not None:
            base = float(table.get(reference, 1.0))
            out[variable] = {reference: 1.0} | {k: round(v / base, 6) for k, v in table.items()}
        else:
            out[variable] = table
    return out


def _references(variables: tuple[str, ...]) -> dict[str, str]:
    """The baseline of each odds-ratio table in ``variables``, as a sentence would name it."""
    binary = {"female": "men", "condition": "without the condition"}
    return {v: PLANTED_REFERENCE.get(v) or binary[v] for v in variables}


def _planted(
    truth: pd.DataFrame,
    persons: pd.DataFrame,
    pop: Population,
    enr: employment.Enrolments,
    cfg: SynthConfig,
    seed: int,
    people: int,
    rows_by_measure: dict[str, int],
    counts: dict[str, int],
) -> dict[str, Any]:
    """Everything planted, configured and realised, as one machine-readable document."""
    from synthetic import names as names_mod

    valid = truth["defect"].isna().to_numpy()
    rows = truth["person_row"].to_numpy()
    forenames = persons["forename"].to_numpy()[rows]
    accented = np.array(
        [
            names_mod.has_accent(f) or names_mod.has_accent(s)
            for f, s in zip(forenames, persons["surname"].to_numpy()[rows], strict=True)
        ]
    )
    nick_eligible = (
        np.array([f in names_mod.NICKNAMES for f in forenames]) & ~truth["accent_dropped"].to_numpy()
    )
    dob = pd.DatetimeIndex(persons["date_of_birth"].to_numpy()[rows])
    transpose_eligible = (dob.day <= 12) & (dob.day != dob.month)
    realised_errors = {
        "accent_dropped": _rate(truth["accent_dropped"].to_numpy(), accented),
        "nickname": _rate(truth["nickname"].to_numpy(), nick_eligible),
        "forename_typo": _rate(truth["forename_typo"].to_numpy()),
        "surname_typo": _rate(truth["surname_typo"].to_numpy()),
        "name_swap": _rate(truth["name_swap"].to_numpy()),
        "dob_day_month_transposed": _rate(
            truth["dob_day_month_transposed"].to_numpy(), np.asarray(transpose_eligible, dtype=bool)
        ),
        "old_postcode": _rate(truth["old_postcode"].to_numpy()),
        "postcode_unformatted": _rate(truth["postcode_unformatted"].to_numpy()),
        "nhs_number_present": _rate(truth["nhs_number_present"].to_numpy()),
        "nhs_number_mistyped": _rate(
            truth["nhs_number_mistyped"].to_numpy(), truth["nhs_number_present"].to_numpy()
        ),
        "duplicate_enrolment": _rate(truth["duplicate_enrolment"].to_numpy()),
    }
    defects = {d: int((truth["defect"] == d).sum()) for d in employment.DEFECTS}

    sens, ppv = {}, {}
    for c in CONDITIONS:
        gp = truth[f"gp_{c}"].to_numpy()
        sr = truth[f"sr_{c}"].to_numpy()
        sens[c] = round(float((gp & sr).sum() / gp.sum()), 6) if gp.sum() else None
        ppv[c] = round(float((gp & sr).sum() / sr.sum()), 6) if sr.sum() else None

    area = pop.area_truth
    effect = cfg.health_effect
    rel = {m: (effect.relative_change[m] if effect.enabled else 0.0) for m in MEASURES}
    cfg_dump = cfg.model_dump(mode="json")
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "people": people,
        "config_sha256": hashlib.sha256(json.dumps(cfg_dump, sort_keys=True).encode()).hexdigest(),
        "config": cfg_dump,
        "counts": counts,
        "study_window": {"start": "2019-01-01", "end": "2025-12-31", "months": 84},
        "enrolment_window": {"start": str(employment.ENROL_START), "end": str(employment.ENROL_END)},
        "extract_date": str(employment.EXTRACT_DATE),
        "census_day": "2021-03-21",
        "qof_year_end": "2023-03-31",
        "economic_activity": {
            "model": "log(rate_lsoa) = intercept + la_effect[LA] + sum_c elasticity_c * log(prevalence_c,lsoa) + noise; "
            "rate = share of residents 16+ on census day; prevalence = (residents with c diagnosed by "
            "2023-03-31 + 0.5) / (residents + 1)",
            "elasticities_inactive_sick": cfg.economic_activity.elasticities_inactive_sick,
            "elasticities_unemployed": cfg.economic_activity.elasticities_unemployed,
            "intercepts": area.attrs.get("intercepts", {}),
            "la_effects": area.attrs.get("la_effects", {}),
            "area_noise_sd": cfg.economic_activity.area_noise_sd,
            "lsoas": len(area),
        },
        "selection": {
            "model": "logit P(enrol) = intercept + log ORs (age band at enrolment date, female, ethnicity, IMD "
            "quintile, economic status on census day, GP-recorded conditions before the enrolment date); "
            "eligible: aged 16-64 and alive on a uniformly drawn date in the enrolment window",
            "reference_categories": _references(
                ("age_band", "female", "ethnicity", "imd_quintile", "economic_status", "condition")
            ),
            "odds_ratios": _against_reference(
                {
                    "age_band": cfg.selection.or_age_band,
                    "female": cfg.selection.or_female,
                    "ethnicity": cfg.selection.or_ethnicity,
                    "imd_quintile": cfg.selection.or_imd_quintile,
                    "economic_status": cfg.selection.or_economic_status,
                    "condition": cfg.selection.or_condition,
                }
            ),
            "intercept": enr.planted["selection_intercept"],
            "eligible_residents": enr.planted["eligible_residents"],
            "clients": enr.planted["clients"],
            "realised_rate": round(enr.planted["clients"] / max(enr.planted["eligible_residents"], 1), 6),
            "representation_ratios": enr.planted["representation_ratios"],
            "representation_population": representation.COMPARISON_POPULATION,
            "representation_model": "expected share of each programme's clients (people, age band at "
            "enrolment) in a group over that group's share of the comparison population (age band on "
            "census day), from the selection probabilities: what the equity audit should estimate",
        },
        "self_report": {
            "sensitivity_planted": cfg.self_report.sensitivity,
            "ppv_planted": cfg.self_report.ppv,
            "false_positive_rate": enr.planted["self_report_false_positive_rate"],
            "sensitivity_realised": sens,
            "ppv_realised": ppv,
        },
        "outcomes": {
            "model": "logit P(job start) = intercept + log ORs (age band, female, ethnicity, IMD quintile, "
            "programme, GP-recorded conditions before enrolment); logit P(sustained | job start) = intercept "
            "+ log ORs (programme, conditions)",
            "job_start_odds_ratios": _against_reference(
                {
                    "age_band": cfg.outcomes.or_age_band,
                    "female": cfg.outcomes.or_female,
                    "ethnicity": cfg.outcomes.or_ethnicity,
                    "imd_quintile": cfg.outcomes.or_imd_quintile,
                    "programme": cfg.outcomes.or_programme,
                    "condition": cfg.outcomes.or_condition,
                }
            ),
            "sustained_odds_ratios": _against_reference(
                {
                    "programme": cfg.outcomes.sustained_or_programme,
                    "condition": cfg.outcomes.sustained_or_condition,
                }
            ),
            "reference_categories": _references(
                ("age_band", "female", "ethnicity", "imd_quintile", "programme", "condition")
            ),
            "job_start_intercept": enr.planted["job_start_intercept"],
            "sustained_intercept": enr.planted["sustained_intercept"],
            "realised_job_start_rate": round(float(truth["job_start"].mean()), 6) if len(truth) else 0.0,
        },
        "health_effect": {
            "enabled": effect.enabled,
            "relative_change": rel,
            "log_rate_ratio": {m: float(np.log1p(v)) for m, v in rel.items()},
            "applies_from": "the calendar month of the person's first enrolment, every month after; no pre-trend",
        },
        "activity": {
            "base_monthly_rate": cfg.activity.base_monthly_rate,
            "frailty_dispersion": cfg.activity.frailty_dispersion,
            "condition_log_rate_ratio": {
                c: dict(zip(MEASURES, activity_mod.CONDITION_LOG_RR[k].tolist(), strict=True))
                for k, c in enumerate(CONDITIONS)
            },
            "month_multipliers": {
                m: [round(x, 6) for x in row]
                for m, row in zip(MEASURES, activity_mod.month_multipliers(cfg).tolist(), strict=True)
            },
            "rows_by_measure": rows_by_measure,
        },
        "identifier_errors": {"configured": cfg.identifier_errors.model_dump(), "realised": realised_errors},
        "row_defects": {
            "configured": cfg.row_defects.model_dump(),
            "realised_counts": defects,
            "rows_valid": int(valid.sum()),
        },
        "programmes": list(PROGRAMMES),
        "nhs_number_check": "modulus 11, weights 10..2; every generated number is valid; errors on the "
        "extracts are described by nhs_number_error_kind in truth/enrolments.parquet",
    }
