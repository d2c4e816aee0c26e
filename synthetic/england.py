"""A synthetic England: about 33,000 LSOAs with practices, QOF prevalences and census outcomes.

The toolkit's area model was fitted on all of England: QOF prevalence of each register,
apportioned from GP practices to LSOAs by registered patients, against the census rates of
economic inactivity through long-term sickness or disability and of unemployment. Its published
result (``PLANTED``) is planted here, so the project's area profile can be checked at the scale it
was published at, not only on the six local authorities of the synthetic city region.

How the data are made (vectorised numpy; the default size takes a few seconds):

* local authorities of realistic, unequal sizes, each with its own LSOAs and practices;
* every LSOA's residents registered with one to five practices of its local authority;
* each practice's true prevalence of each condition: a national level, a local-authority effect,
  three shared area factors (age, deprivation, urbanity: conditions are correlated across
  areas, as in the real QOF) and the practice's own variation; the published register is a
  binomial count of its list;
* each LSOA's prevalence is apportioned from the *published* practice prevalences exactly as the
  area profile does it, and the census rate follows the planted model in that apportioned
  prevalence: ``log(rate) = intercept + LA effect + sum_c beta_c * log(prevalence_c / national
  level_c) + area noise``. The census is a full count, so the LSOA count is the rate times its
  residents, rounded; the noise is the area's own unexplained variation (larger for smaller
  expected counts, so robust errors matter).

Because the outcome is planted on the measured prevalences, the model the area profile fits is
exactly the planted one: its estimates should cover the planted elasticities within their
confidence intervals, and the conditions with a non-zero planted elasticity are the significant
ones (a condition planted at zero is significant by chance at the test's 5% level).

The issue gives the direction only for inactivity (all positive). For unemployment the planted
signs follow the toolkit's pattern that older areas (more osteoporosis, hypertension and
hypothyroidism) have fewer unemployed residents aged 16+: those three are planted negative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ig_policies.workspace import write_json
from synthetic.tables import write_delimited

#: The registers of the England model (the area profile's ``AREA_CONDITIONS``), with their QOF
#: group code, national prevalence (share of the register's list, England 2022-23, rounded)
#: and the share of a practice's list in the register's age group.
ENGLAND_REGISTERS: dict[str, tuple[str, float, float]] = {
    "depression": ("DEP", 0.132, 0.80),
    "smi": ("MH", 0.0095, 1.0),
    "epilepsy": ("EP", 0.0083, 0.80),
    "copd": ("COPD", 0.019, 1.0),
    "diabetes": ("DM", 0.075, 0.81),
    "chd": ("CHD", 0.030, 1.0),
    "hypertension": ("HYP", 0.143, 1.0),
    "learning_disability": ("LD", 0.0055, 1.0),
    "osteoporosis": ("OST", 0.010, 0.38),
    "asthma": ("AST", 0.065, 0.93),
    "pad": ("PAD", 0.0058, 1.0),
    "atrial_fibrillation": ("AF", 0.021, 1.0),
    "stroke": ("STIA", 0.018, 1.0),
    "ckd": ("CKD", 0.041, 0.80),
    "hypothyroidism": ("THY", 0.036, 1.0),
}
CONDITIONS: tuple[str, ...] = tuple(ENGLAND_REGISTERS)

#: The toolkit's published area result: elasticity of each rate with respect to prevalence.
#: Conditions not listed are planted at zero (no association).
PLANTED: dict[str, dict[str, float]] = {
    "inactive_sick_rate": {
        "epilepsy": 2.3,
        "smi": 0.55,
        "copd": 0.45,
        "learning_disability": 0.35,
        "chd": 0.30,
        "pad": 0.25,
        "atrial_fibrillation": 0.20,
        "stroke": 0.25,
        "ckd": 0.20,
        "depression": 0.30,
    },
    "unemployment_rate": {
        "smi": 1.0,
        "osteoporosis": -0.30,
        "learning_disability": 0.30,
        "copd": 0.35,
        "diabetes": 0.25,
        "chd": 0.20,
        "hypothyroidism": -0.25,
        "hypertension": -0.40,
    },
}
#: The headline elasticity of each rate (the one the toolkit's summary quotes).
HEADLINE: dict[str, str] = {"inactive_sick_rate": "epilepsy", "unemployment_rate": "smi"}


class EnglandConfig(BaseModel):
    """The size and shape of the synthetic England (defaults: England's 2021 geography)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lsoas: int = Field(33_755, ge=200, description="LSOAs (England 2021: 33,755)")
    local_authorities: int = Field(309, ge=2, description="local authorities (England 2022: 309)")
    practices_per_lsoa: float = Field(
        0.19, gt=0, le=1, description="GP practices per LSOA (England: about 6,400)"
    )
    residents_16_plus_mean: float = Field(1_380, gt=100, description="mean residents aged 16+ per LSOA")
    registered_per_resident_16_plus: float = Field(
        1.25, gt=0, description="registered patients (all ages) per resident aged 16+"
    )
    mean_rate_inactive_sick: float = Field(0.040, gt=0, lt=0.5)
    mean_rate_unemployed: float = Field(0.032, gt=0, lt=0.5)
    la_effect_sd: float = Field(0.15, ge=0, description="SD of local-authority effects (log scale)")
    factor_loading_sd: float = Field(0.12, ge=0, description="SD of conditions' loadings on area factors")
    practice_sd: float = Field(0.22, ge=0, description="SD of a practice's own log-prevalence variation")
    area_noise_sd: float = Field(0.12, ge=0, description="SD of unexplained log-rate variation per LSOA")
    planted: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in PLANTED.items()}
    )

    @model_validator(mode="after")
    def _known_conditions(self) -> EnglandConfig:
        for outcome, betas in self.planted.items():
            if outcome not in PLANTED:
                raise ValueError(f"planted: unknown rate {outcome!r}; rates are {', '.join(PLANTED)}")
            unknown = sorted(set(betas) - set(CONDITIONS))
            if unknown:
                raise ValueError(f"planted.{outcome}: unknown conditions {', '.join(unknown)}")
        return self


@dataclass(frozen=True)
class EnglandReference:
    """The synthetic England in the area profile's canonical tables, and what was planted."""

    census: (
        pd.DataFrame
    )  # lsoa21cd, residents_16_plus, economically_active, unemployed, inactive, inactive_sick
    qof: pd.DataFrame  # practice_code, condition, register, list_size
    registrations: pd.DataFrame  # practice_code, lsoa21cd, patients
    lsoa_lookup: pd.DataFrame  # lsoa21cd, lad22cd, lad22nm, imd_decile
    truth: dict[str, Any]

    def planted_elasticity(self, outcome: str, condition: str) -> float:
        return float(self.truth["elasticities"][outcome].get(condition, 0.0))

    def planted_significant(self, outcome: str) -> list[str]:
        """Conditions planted with a non-zero elasticity for ``outcome``, in ``CONDITIONS`` order."""
        betas = self.truth["elasticities"][outcome]
        return [c for c in CONDITIONS if betas.get(c, 0.0) != 0.0]


def generate_england(config: EnglandConfig | None = None, seed: int = 1) -> EnglandReference:
    """The synthetic England for ``config`` (default: full size). Same config and seed, same data."""
    cfg = config or EnglandConfig()
    rng = np.random.default_rng(seed)
    n_lsoa, n_la = cfg.lsoas, min(cfg.local_authorities, cfg.lsoas // 20)
    n_cond = len(CONDITIONS)

    # local authorities of unequal size (log-normal shares), at least 20 LSOAs each
    share = rng.lognormal(0.0, 0.6, n_la)
    sizes = 20 + np.floor(share / share.sum() * (n_lsoa - 20 * n_la)).astype(np.int64)
    sizes[: n_lsoa - int(sizes.sum())] += 1
    lsoa_la = np.repeat(np.arange(n_la), sizes)

    # practices per local authority, in proportion to its LSOAs (at least 3)
    n_prac_la = np.maximum(3, np.round(sizes * cfg.practices_per_lsoa)).astype(np.int64)
    prac_la = np.repeat(np.arange(n_la), n_prac_la)
    prac_first = np.concatenate([[0], np.cumsum(n_prac_la)[:-1]])
    n_prac = len(prac_la)

    # each LSOA registers with 1..5 practices of its LA (nearby ones most: a random window)
    residents = np.maximum(
        400, np.round(rng.normal(cfg.residents_16_plus_mean, 0.2 * cfg.residents_16_plus_mean, n_lsoa))
    ).astype(np.int64)
    k = rng.integers(1, 6, n_lsoa)
    slot = np.arange(5)[None, :]
    start = rng.integers(0, n_prac_la[lsoa_la])
    chosen = prac_first[lsoa_la][:, None] + (start[:, None] + slot) % n_prac_la[lsoa_la][:, None]
    weights = rng.gamma(1.5, 1.0, (n_lsoa, 5)) * (slot < k[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    patients = np.round(weights * (residents * cfg.registered_per_resident_16_plus)[:, None]).astype(np.int64)
    used = (slot < k[:, None]) & (patients > 0)
    reg_lsoa = np.broadcast_to(np.arange(n_lsoa)[:, None], used.shape)[used]
    reg_prac = chosen[used]
    reg_n = patients[used]
    # one row per (practice, LSOA): two slots can wrap onto the same practice in a small LA
    key = reg_prac * n_lsoa + reg_lsoa
    uniq, inverse = np.unique(key, return_inverse=True)
    reg_n = np.bincount(inverse, weights=reg_n).astype(np.int64)
    reg_prac, reg_lsoa = uniq // n_lsoa, uniq % n_lsoa
    list_size = np.bincount(reg_prac, weights=reg_n, minlength=n_prac).astype(np.int64)

    # practice prevalences: national level, LA effect, three area factors, the practice's own
    base = np.array([ENGLAND_REGISTERS[c][1] for c in CONDITIONS])
    eligible = np.array([ENGLAND_REGISTERS[c][2] for c in CONDITIONS])
    loadings = rng.normal(0.0, cfg.factor_loading_sd, (3, n_cond))
    la_factor = rng.normal(0.0, 1.0, (n_la, 3))
    factors = la_factor[prac_la] * 0.5 + rng.normal(0.0, 1.0, (n_prac, 3))
    log_prev = (
        np.log(base)[None, :]
        + rng.normal(0.0, 0.08, (n_la, n_cond))[prac_la]
        + factors @ loadings
        + rng.normal(0.0, cfg.practice_sd, (n_prac, n_cond))
    )
    prevalence = np.minimum(np.exp(log_prev), 0.6)
    cond_list = np.maximum(1, np.round(list_size[:, None] * eligible[None, :])).astype(np.int64)
    register = rng.binomial(cond_list, prevalence)
    published = register / cond_list  # what QOF publishes per practice

    # apportion to LSOAs by registered patients, exactly as the area profile does
    lsoa_patients = np.bincount(reg_lsoa, weights=reg_n, minlength=n_lsoa)
    lsoa_prev = (
        np.stack(
            [
                np.bincount(reg_lsoa, weights=reg_n * published[reg_prac, j], minlength=n_lsoa)
                for j in range(n_cond)
            ],
            axis=1,
        )
        / lsoa_patients[:, None]
    )

    # census: the planted model in the apportioned prevalences, as a full count
    log_rel = np.log(np.maximum(lsoa_prev, 1e-6) / base[None, :])
    counts: dict[str, np.ndarray] = {}
    intercepts: dict[str, float] = {}
    for outcome, mean_rate in (
        ("inactive_sick_rate", cfg.mean_rate_inactive_sick),
        ("unemployment_rate", cfg.mean_rate_unemployed),
    ):
        beta = np.array([cfg.planted.get(outcome, {}).get(c, 0.0) for c in CONDITIONS])
        la_effect = rng.normal(0.0, cfg.la_effect_sd, n_la)[lsoa_la]
        signal = log_rel @ beta + la_effect
        expected = mean_rate * np.exp(signal - signal.mean())
        noise_sd = np.sqrt(cfg.area_noise_sd**2 + 1.0 / np.maximum(residents * expected, 1.0))
        rate = np.minimum(expected * np.exp(rng.normal(0.0, 1.0, n_lsoa) * noise_sd), 0.6)
        counts[outcome] = np.round(residents * rate).astype(np.int64)
        intercepts[outcome] = float(np.log(mean_rate) - signal.mean())

    lsoa_codes = np.char.add("E01", np.char.zfill(np.arange(1, n_lsoa + 1).astype(str), 6))
    la_codes = np.char.add("E06", np.char.zfill(np.arange(1, n_la + 1).astype(str), 6))
    prac_codes = np.char.add("Y", np.char.zfill(np.arange(1, n_prac + 1).astype(str), 5))
    inactive_other = np.round(residents * rng.uniform(0.25, 0.40, n_lsoa)).astype(np.int64)
    inactive = np.minimum(
        counts["inactive_sick_rate"] + inactive_other, residents - counts["unemployment_rate"]
    )
    census = pd.DataFrame(
        {
            "lsoa21cd": lsoa_codes,
            "residents_16_plus": residents,
            "economically_active": residents - inactive,
            "unemployed": counts["unemployment_rate"],
            "inactive": inactive,
            "inactive_sick": counts["inactive_sick_rate"],
        }
    )
    qof = pd.DataFrame(
        {
            "practice_code": np.repeat(prac_codes, n_cond),
            "condition": np.tile(np.array(CONDITIONS, dtype=object), n_prac),
            "register": register.ravel(),
            "list_size": cond_list.ravel(),
        }
    )
    registrations = pd.DataFrame(
        {"practice_code": prac_codes[reg_prac], "lsoa21cd": lsoa_codes[reg_lsoa], "patients": reg_n}
    )
    imd = np.clip(np.ceil(10 * rng.uniform(0, 1, n_lsoa)), 1, 10).astype(np.int64)
    lookup = pd.DataFrame(
        {
            "lsoa21cd": lsoa_codes,
            "lad22cd": la_codes[lsoa_la],
            "lad22nm": np.char.add("Local authority ", (lsoa_la + 1).astype(str)),
            "imd_decile": imd,
        }
    )
    truth = {
        "what": "synthetic England reference set with the toolkit's area result planted",
        "seed": seed,
        "config": cfg.model_dump(mode="json"),
        "model": "log(rate) = intercept + LA effect + sum_c beta_c * log(apportioned prevalence_c / national_c) + noise",
        "elasticities": {
            o: {c: float(cfg.planted.get(o, {}).get(c, 0.0)) for c in CONDITIONS} for o in PLANTED
        },
        "significant": {
            o: [c for c in CONDITIONS if cfg.planted.get(o, {}).get(c, 0.0) != 0.0] for o in PLANTED
        },
        "headline": dict(HEADLINE),
        "national_prevalence": {c: float(b) for c, b in zip(CONDITIONS, base, strict=True)},
        "intercepts": intercepts,
        "counts": {
            "lsoas": int(n_lsoa),
            "local_authorities": int(n_la),
            "practices": int(n_prac),
            "registration_rows": len(registrations),
        },
    }
    return EnglandReference(census, qof, registrations, lookup, truth)


def write_england_reference(folder: Path, reference: EnglandReference) -> dict[str, Path]:
    """Write the reference set in the published layouts (TS066, QOF, GP registrations, lookup)
    under ``folder/reference`` and its planted truth to ``folder/truth/england_planted.json``."""
    ref, truth = folder / "reference", folder / "truth"
    ref.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    c = reference.census
    prefix = "Economic activity status: "
    ts066 = pd.DataFrame(
        {
            "date": 2021,
            "geography": c["lsoa21cd"],
            "geography code": c["lsoa21cd"],
            prefix + "Total: All usual residents aged 16 years and over": c["residents_16_plus"],
            prefix + "Economically active: In employment": c["economically_active"] - c["unemployed"],
            prefix + "Economically active: Unemployed": c["unemployed"],
            prefix + "Economically inactive": c["inactive"],
            prefix + "Economically inactive: Long-term sick or disabled": c["inactive_sick"],
        }
    )
    codes = {name: group for name, (group, _, _) in ENGLAND_REGISTERS.items()}
    q = reference.qof
    qof = pd.DataFrame(
        {
            "FINANCIAL_YEAR": "2022-23",
            "PRACTICE_CODE": q["practice_code"],
            "GROUP_CODE": q["condition"].map(codes),
            "REGISTER": q["register"],
            "PRACTICE_LIST_SIZE": q["list_size"],
        }
    )
    r = reference.registrations
    regs = pd.DataFrame(
        {
            "PUBLICATION": "Patients Registered at a GP Practice",
            "EXTRACT_DATE": "01APR2023",
            "PRACTICE_CODE": r["practice_code"],
            "LSOA_CODE": r["lsoa21cd"],
            "SEX": "ALL",
            "NUMBER_OF_PATIENTS": r["patients"],
        }
    )
    return {
        "census_economic_activity": write_delimited(ts066, ref / "census_economic_activity.csv"),
        "qof_prevalence": write_delimited(qof, ref / "qof_prevalence.csv"),
        "gp_registrations_lsoa": write_delimited(regs, ref / "gp_registrations_lsoa.csv"),
        "lsoa_lookup": write_delimited(reference.lsoa_lookup, ref / "lsoa_lookup.csv"),
        "planted": write_json(truth / "england_planted.json", reference.truth),
    }


def read_england_truth(folder: Path) -> dict[str, Any]:
    """The planted truth written by ``write_england_reference``."""
    return json.loads((folder / "truth" / "england_planted.json").read_text())


__all__ = [
    "CONDITIONS",
    "ENGLAND_REGISTERS",
    "HEADLINE",
    "PLANTED",
    "EnglandConfig",
    "EnglandReference",
    "generate_england",
    "read_england_truth",
    "write_england_reference",
]
