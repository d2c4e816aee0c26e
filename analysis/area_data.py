"""Loaders for the published area data in ``reference/``, in their published column layouts.

Each loader accepts the file as it is downloaded (ONS/Nomis census tables, NHS Digital QOF and
GP-registration files) and the synthetic test bed's copies of them, and returns one small
canonical table. Column names are matched after normalising case, spaces and punctuation,
because the publishers change them slightly between releases. A file that cannot be read says
which file and which column is the problem.

Canonical tables:

* census economic activity: ``lsoa21cd, residents_16_plus, economically_active, unemployed,
  inactive, inactive_sick``;
* QOF prevalence: ``practice_code, condition, register, list_size``;
* GP registrations: ``practice_code, lsoa21cd, patients``;
* LSOA lookup: ``lsoa21cd, lad22cd, lad22nm, imd_decile``;
* census population by group: long, ``lad22cd, status, characteristic columns..., people``
  (characteristics: ``age_band, sex, ethnicity, imd_quintile, disability`` as the file has them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.vocabulary import CONDITIONS
from ig_policies.errors import InputError

#: Conditions the area profile can use: the project's ten, and five more QOF registers the
#: toolkit's England-wide area model found associated with economic inactivity or unemployment.
AREA_CONDITIONS: tuple[str, ...] = (
    *CONDITIONS,
    "pad",
    "atrial_fibrillation",
    "stroke",
    "ckd",
    "hypothyroidism",
)

#: QOF register group codes -> the project's condition codes (ARCHITECTURE.md).
QOF_GROUPS: dict[str, str] = {
    "DEP": "depression",
    "MH": "smi",
    "EP": "epilepsy",
    "COPD": "copd",
    "DM": "diabetes",
    "CHD": "chd",
    "HYP": "hypertension",
    "LD": "learning_disability",
    "OST": "osteoporosis",
    "AST": "asthma",
    "PAD": "pad",
    "AF": "atrial_fibrillation",
    "STIA": "stroke",
    "CKD": "ckd",
    "THY": "hypothyroidism",
}

CENSUS_MEASURES: tuple[str, ...] = (
    "residents_16_plus",
    "economically_active",
    "unemployed",
    "inactive",
    "inactive_sick",
)


def _norm(name: object) -> str:
    """Lower case, without punctuation or spaces: 'Economic activity status: Total' -> 'economicactivitystatustotal'."""
    text = re.sub(r";\s*measures:\s*value$", "", str(name).strip(), flags=re.I)
    return re.sub(r"[^a-z0-9+]", "", text.lower())


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError(
            str(path),
            "the file does not exist",
            hint="put the published file in the workspace's reference/ folder (ehl synth writes synthetic ones).",
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return pd.read_csv(path, dtype=str, encoding=encoding, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(
                str(path), f"not a readable CSV file ({exc})", hint="check the file is the CSV download"
            ) from None
    raise InputError(
        str(path), "the text encoding is neither UTF-8 nor Windows-1252", hint="re-save it as UTF-8"
    )


def _find(df: pd.DataFrame, candidates: Iterable[str]) -> str | None:
    """The first column whose normalised name equals one of ``candidates`` (normalised)."""
    by_norm = {_norm(c): c for c in df.columns}
    for cand in candidates:
        if _norm(cand) in by_norm:
            return by_norm[_norm(cand)]
    return None


def _require(df: pd.DataFrame, path: Path, what: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    col = _find(df, candidates)
    if col is None:
        raise InputError(
            str(path),
            f"no column for {what} (looked for {', '.join(repr(c) for c in candidates[:3])})",
            hint="use the published file unchanged, or rename the column to one of those names.",
            column=candidates[0],
        )
    return col


def _numbers(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    raw = df[col].astype("string").str.replace(",", "", regex=False).str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is row 1
        raise InputError(
            str(path), "a count is not a number", hint="check the file is not damaged", row=row, column=col
        )
    return values.fillna(0)


# --------------------------------------------------------------------------------------------
# Census 2021 economic activity by LSOA (TS066)

_LSOA_CODE = (
    "lsoa21cd",
    "geography code",
    "Lower layer Super Output Areas Code",
    "Lower Layer Super Output Areas Code",
    "LSOA code",
    "lsoa_code",
    "LSOA_CODE",
    "lsoa21",
)

#: wide TS066 (Nomis bulk download) column suffixes -> canonical measure; the first match wins.
_TS066_WIDE: dict[str, tuple[str, ...]] = {
    "residents_16_plus": (
        "residents_16_plus",
        "Economic activity status: Total: All usual residents aged 16 years and over",
        "Total: All usual residents aged 16 years and over",
    ),
    "active_non_students": (
        "Economic activity status: Economically active (excluding full-time students)",
        "economically_active_excluding_students",
    ),
    "active_students": (
        "Economic activity status: Economically active and a full-time student",
        "economically_active_full_time_students",
    ),
    "economically_active": ("economically_active", "Economic activity status: Economically active"),
    "employed": ("Economic activity status: Economically active: In employment", "employed", "in_employment"),
    "unemployed_non_students": (
        "Economic activity status: Economically active (excluding full-time students): Unemployed",
        "Economic activity status: Economically active (excluding full-time students):Unemployed",
    ),
    "unemployed_students": (
        "Economic activity status: Economically active and a full-time student: Unemployed",
        "Economic activity status: Economically active and a full-time student:Unemployed",
    ),
    "unemployed": ("unemployed", "Economic activity status: Economically active: Unemployed"),
    "inactive": ("Economic activity status: Economically inactive", "inactive", "economically_inactive"),
    "inactive_sick": (
        "Economic activity status: Economically inactive: Long-term sick or disabled",
        "inactive_sick",
        "long_term_sick_or_disabled",
        "inactive_long_term_sick",
    ),
}

#: long (ONS custom dataset) category labels, normalised prefix -> measure contributions
_TS066_LONG_CODE_COLUMNS = (
    "Economic activity status (20 categories) Code",
    "Economic activity status (20 categories)",
)


def load_census_economic_activity(path: str | Path) -> pd.DataFrame:
    """Census 2021 economic activity by LSOA (TS066) as the canonical table.

    Reads the wide Nomis bulk layout ("geography code" plus one column per status), the long
    ONS custom-dataset layout (one row per LSOA and status with an ``Observation``), and files
    that already use the canonical column names. Unemployed includes unemployed full-time
    students and economically active includes active students, as in ONS's own rates.
    """
    p = Path(path)
    df = _read_csv(p)
    lsoa = _require(df, p, "the LSOA code", _LSOA_CODE)
    if _find(df, ("Observation", "observation", "count")) and _find(df, _TS066_LONG_CODE_COLUMNS):
        return _census_long(df, p, lsoa)
    cols = {k: _find(df, v) for k, v in _TS066_WIDE.items()}
    out = pd.DataFrame({"lsoa21cd": df[lsoa].str.strip()})

    def measure(name: str) -> pd.Series | None:
        return _numbers(df, cols[name], p) if cols[name] else None

    out["residents_16_plus"] = _must(measure("residents_16_plus"), p, "all usual residents aged 16 and over")
    active = measure("economically_active")
    if active is None:
        parts = [s for s in (measure("active_non_students"), measure("active_students")) if s is not None]
        active = sum(parts) if parts else None  # type: ignore[assignment]
    unemployed = measure("unemployed")
    if unemployed is None:
        parts = [
            s for s in (measure("unemployed_non_students"), measure("unemployed_students")) if s is not None
        ]
        unemployed = sum(parts) if parts else None  # type: ignore[assignment]
    out["unemployed"] = _must(unemployed, p, "unemployed residents")
    inactive = measure("inactive")
    employed = measure("employed")
    if active is None and inactive is not None:
        active = out["residents_16_plus"] - inactive
    if active is None and employed is not None:
        active = employed + out["unemployed"]
    out["economically_active"] = _must(active, p, "economically active residents")
    out["inactive"] = (
        inactive if inactive is not None else out["residents_16_plus"] - out["economically_active"]
    )
    out["inactive_sick"] = _must(
        measure("inactive_sick"), p, "residents inactive through long-term sickness or disability"
    )
    return _valid_lsoas(out, p)


def _must(series: pd.Series | None, path: Path, what: str) -> pd.Series:
    if series is None:
        raise InputError(
            str(path),
            f"no column for {what}",
            hint="use the census TS066 economic activity table by LSOA as downloaded.",
        )
    return series


def _census_long(df: pd.DataFrame, p: Path, lsoa: str) -> pd.DataFrame:
    label_col = _require(
        df, p, "the economic activity category", ("Economic activity status (20 categories)",)
    )
    obs = _numbers(df, _require(df, p, "the count", ("Observation", "count")), p)
    labels = df[label_col].astype(str).str.lower()
    tidy = pd.DataFrame({"lsoa21cd": df[lsoa].str.strip(), "label": labels, "n": obs})
    applicable = ~tidy["label"].str.contains("does not apply")
    active = tidy["label"].str.startswith("economically active")
    unemployed = active & tidy["label"].str.contains("unemployed")
    inactive = tidy["label"].str.startswith("economically inactive")
    sick = inactive & tidy["label"].str.contains("long-term sick or disabled")
    g = tidy.assign(
        residents_16_plus=tidy["n"].where(applicable, 0),
        economically_active=tidy["n"].where(active, 0),
        unemployed=tidy["n"].where(unemployed, 0),
        inactive=tidy["n"].where(inactive, 0),
        inactive_sick=tidy["n"].where(sick, 0),
    )
    out = g.groupby("lsoa21cd", as_index=False)[list(CENSUS_MEASURES)].sum()
    return _valid_lsoas(out, p)


def _valid_lsoas(df: pd.DataFrame, p: Path) -> pd.DataFrame:
    ok = df["lsoa21cd"].astype(str).str.match(r"^[EW]01\d{6}$")
    if not ok.any():
        raise InputError(str(p), "no row has an LSOA code like E01006512", hint="use the LSOA-level download")
    return df[ok].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Census 2021 population by characteristic and economic activity (for the equity audit)

#: census economic activity status -> the statuses the audit distinguishes. The census 2021
#: tables give the reason for inactivity (retired, student, looking after home or family, long-term
#: sick or disabled, other); a table that does not (only "Economically inactive") counts every
#: inactive person other than the long-term sick as ``inactive_other``.
STATUSES: tuple[str, ...] = (
    "employed",
    "unemployed",
    "inactive_sick",
    "inactive_home",
    "inactive_student",
    "inactive_retired",
    "inactive_other",
)
#: the statuses of the two named population bases, at every age (the equity audit now uses
#: ``analysis.equity.ComparisonPopulation``, which also sets the age range)
BASIS_STATUSES: dict[str, tuple[str, ...]] = {
    "out_of_work": tuple(s for s in STATUSES if s != "employed"),
    "inactive_sick": ("inactive_sick",),
}


def _status_of(label: str) -> str | None:
    text = label.strip().lower()
    if text in STATUSES:
        return text
    if "does not apply" in text or not text:
        return None
    if "unemployed" in text:
        return "unemployed"
    if "long-term sick or disabled" in text:
        return "inactive_sick"
    if text.startswith("economically inactive"):
        if "retired" in text:
            return "inactive_retired"
        if "student" in text:
            return "inactive_student"
        if "looking after home" in text:
            return "inactive_home"
        return "inactive_other"
    if text.startswith("economically active") or "employ" in text:
        return "employed"
    return None


def _sex_of(label: str) -> str | None:
    text = label.strip().lower()
    return {"female": "F", "f": "F", "male": "M", "m": "M"}.get(text)


def _ethnicity_of(label: str) -> str | None:
    """ONS 5/6-category ethnic group labels -> the programme data's groups."""
    text = label.strip().lower()
    for word, group in (
        ("asian", "Asian"),
        ("black", "Black"),
        ("mixed", "Mixed"),
        ("white", "White"),
        ("other", "Other"),
    ):
        if text.startswith(word):
            return group
    return None


def _disability_of(label: str) -> str | None:
    """Census disability labels -> ``Yes`` (disabled) / ``No``; "Does not apply" and unknowns -> None.

    2021 census (TS038, "Disability (2/3/4 categories)"): "Disabled under the Equality Act" with
    or without ": Day-to-day activities limited a lot/a little" is ``Yes``; "Not disabled under the
    Equality Act" (with or without a long-term condition that does not limit) is ``No``. 2011
    census ("Long-term health problem or disability"): "Day-to-day activities limited a lot/a
    little" is ``Yes``, "not limited" is ``No``.
    """
    text = label.strip().lower()
    if text in ("yes", "no"):
        return text.capitalize()
    if text in ("true", "1", "disabled"):
        return "Yes"
    if text in ("false", "0"):
        return "No"
    if text.startswith("not disabled") or "not limited" in text:
        return "No"
    if text.startswith("disabled") or "limited a lot" in text or "limited a little" in text:
        return "Yes"
    return None


def _label_column(df: pd.DataFrame, prefixes: tuple[str, ...]) -> str | None:
    """A label column whose normalised name starts with one of ``prefixes`` (not its ``Code`` twin)."""
    for col in df.columns:
        n = _norm(col)
        if any(n.startswith(_norm(pre)) for pre in prefixes) and not n.endswith("code"):
            return col
    return None


def load_census_population_by_group(
    path: str | Path, lsoa_lookup: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Census residents aged 16+ by local authority, economic activity and characteristics.

    Reads long tables with one count per combination: the synthetic
    ``census_economic_activity_by_group.csv`` (``lsoa21cd, lad22cd, age_band, sex, ethnicity,
    disability, economic_activity, count``) and ONS "create a custom dataset" downloads ("Lower
    tier local authorities Code", "Age (N categories)", "Sex (2 categories)", "Ethnic group (N
    categories)", "Disability (2/3/4 categories)", "Economic activity status (N categories)",
    "Observation"). Disability categories are collapsed to disabled under the Equality Act or
    not (see ``_disability_of``); finer categories of one table sum into those two.
    Returns ``lad22cd, status, people`` plus whichever of ``age_band, sex, ethnicity,
    disability`` the file has (and ``imd_quintile`` when rows are by LSOA and the lookup has
    IMD), with values in the programme data's coding (sex ``F``/``M``,
    ethnic groups ``Asian``/``Black``/``Mixed``/``White``/``Other``, disability ``Yes``/``No``).
    """
    p = Path(path)
    df = _read_csv(p)
    count = _require(df, p, "the count", ("count", "Observation", "people", "observation"))
    la = _find(
        df, ("lad22cd", "Lower tier local authorities Code", "Local authority code", "LAD22CD", "lad23cd")
    )
    out = pd.DataFrame({"people": _numbers(df, count, p)})
    lsoa = _find(df, ("lsoa21cd", *_LSOA_CODE))
    by_lsoa = lsoa_lookup.set_index("lsoa21cd") if lsoa_lookup is not None else None
    if la is not None:
        out["lad22cd"] = df[la].astype(str).str.strip()
    elif lsoa is not None and by_lsoa is not None:
        out["lad22cd"] = df[lsoa].astype(str).str.strip().map(by_lsoa["lad22cd"])
    else:
        raise InputError(
            str(p),
            "no local authority code column (and no LSOA code with a lookup to find it)",
            hint="use a table by local authority ('Lower tier local authorities Code') or by LSOA.",
        )
    if lsoa is not None and by_lsoa is not None and by_lsoa["imd_decile"].notna().any():
        # area deprivation of where people live: the LSOA's IMD decile, as quintile 1..5
        decile = pd.to_numeric(df[lsoa].astype(str).str.strip().map(by_lsoa["imd_decile"]), errors="coerce")
        out["imd_quintile"] = np.ceil(decile / 2).astype("Int64").astype("string")
    status = _label_column(df, ("economic_activity", "Economic activity status"))
    if status is None:
        raise InputError(
            str(p),
            "no economic activity column",
            hint="the table must be broken down by economic activity status",
        )
    out["status"] = df[status].astype(str).map(_status_of)
    for name, prefixes, mapper in (
        ("age_band", ("age_band", "Age ("), lambda v: str(v).strip()),
        ("sex", ("sex",), _sex_of),
        ("ethnicity", ("ethnicity", "Ethnic group"), _ethnicity_of),
        ("disability", ("disability", "Long-term health problem or disability"), _disability_of),
    ):
        col = _label_column(df, prefixes)
        if col is not None:
            out[name] = df[col].astype(str).map(mapper)
    dims = [
        c
        for c in ("lad22cd", "status", "age_band", "sex", "ethnicity", "imd_quintile", "disability")
        if c in out.columns
    ]
    out = out.dropna(subset=dims)
    return out.groupby(dims, as_index=False)["people"].sum()


# --------------------------------------------------------------------------------------------
# QOF prevalence by practice (NHS Digital)


def load_qof_prevalence(path: str | Path) -> pd.DataFrame:
    """QOF register sizes and list sizes per practice and condition.

    The published ``PREVALENCE_yyyy.csv`` has ``PRACTICE_CODE, GROUP_CODE, REGISTER,
    PATIENT_LIST_TYPE, PRACTICE_LIST_SIZE``; ``PRACTICE_LIST_SIZE`` is the list size for that
    register's age group, which is the right denominator. Registers outside ``AREA_CONDITIONS``
    (the project's ten conditions and five more) are ignored. A file with a ``condition`` column
    (project codes) is read as is.
    """
    p = Path(path)
    df = _read_csv(p)
    practice = _require(df, p, "the practice code", ("PRACTICE_CODE", "practice_code", "Practice code"))
    group = _find(df, ("GROUP_CODE", "Group code", "INDICATOR_GROUP_CODE"))
    condition = _find(df, ("condition",))
    register = _require(df, p, "the register size", ("REGISTER", "register", "Register"))
    size = _require(
        df, p, "the list size", ("PRACTICE_LIST_SIZE", "list_size", "LIST_SIZE", "Practice list size")
    )
    if group is not None:
        codes = df[group].astype(str).str.strip().str.upper().map(QOF_GROUPS)
    elif condition is not None:
        codes = df[condition].astype(str).str.strip().str.lower()
        codes = codes.where(codes.isin(AREA_CONDITIONS))
    else:
        raise InputError(
            str(p), "no column saying which register each row is (GROUP_CODE)", column="GROUP_CODE"
        )
    out = pd.DataFrame(
        {
            "practice_code": df[practice].astype(str).str.strip().str.upper(),
            "condition": codes,
            "register": _numbers(df, register, p),
            "list_size": _numbers(df, size, p),
        }
    ).dropna(subset=["condition"])
    if out.empty:
        raise InputError(
            str(p),
            "no row is for one of the project's conditions",
            hint=f"expected QOF groups {', '.join(QOF_GROUPS)}",
        )
    return out.groupby(["practice_code", "condition"], as_index=False)[["register", "list_size"]].sum()


# --------------------------------------------------------------------------------------------
# Patients registered at a GP practice, by LSOA (NHS Digital)


def load_gp_registrations(path: str | Path) -> pd.DataFrame:
    """Registered patients per practice and LSOA.

    The published ``gp-reg-pat-prac-lsoa-all.csv`` has ``PUBLICATION, EXTRACT_DATE,
    PRACTICE_CODE, PRACTICE_NAME, LSOA_CODE, SEX, NUMBER_OF_PATIENTS``. When a file has both
    per-sex rows and ``ALL`` rows only ``ALL`` rows are used, so nobody is counted twice; rows
    whose LSOA is not an English or Welsh LSOA code (e.g. "NO2011") are dropped.
    """
    p = Path(path)
    df = _read_csv(p)
    practice = _require(df, p, "the practice code", ("PRACTICE_CODE", "practice_code", "ORG_CODE"))
    lsoa = _require(
        df, p, "the LSOA code", ("LSOA_CODE", "lsoa21cd", "LSOA_CODE_2021", "LSOA21CD", "lsoa_code")
    )
    count = _require(
        df, p, "the number of patients", ("NUMBER_OF_PATIENTS", "patients", "number_of_patients")
    )
    out = pd.DataFrame(
        {
            "practice_code": df[practice].astype(str).str.strip().str.upper(),
            "lsoa21cd": df[lsoa].astype(str).str.strip(),
            "patients": _numbers(df, count, p),
        }
    )
    sex = _find(df, ("SEX", "sex"))
    if sex is not None:
        s = df[sex].astype(str).str.strip().str.upper()
        if s.isin(["ALL", "PERSONS"]).any():
            out = out[s.isin(["ALL", "PERSONS"]).to_numpy()]
    out = out[out["lsoa21cd"].str.match(r"^[EW]01\d{6}$")]
    return out.groupby(["practice_code", "lsoa21cd"], as_index=False)["patients"].sum()


# --------------------------------------------------------------------------------------------
# LSOA lookup


def load_lsoa_lookup(path: str | Path) -> pd.DataFrame:
    """LSOA -> local authority (and IMD decile when present)."""
    p = Path(path)
    df = _read_csv(p)
    out = pd.DataFrame(
        {
            "lsoa21cd": df[
                _require(df, p, "the LSOA code", ("lsoa21cd", "LSOA21CD", "LSOA code"))
            ].str.strip(),
            "lad22cd": df[
                _require(
                    df, p, "the local authority code", ("lad22cd", "LAD22CD", "lad23cd", "LAD23CD", "lad21cd")
                )
            ].str.strip(),
        }
    )
    name = _find(df, ("lad22nm", "LAD22NM", "lad23nm", "lad21nm"))
    out["lad22nm"] = df[name].str.strip() if name else out["lad22cd"]
    imd = _find(df, ("imd_decile", "IMD decile", "Index of Multiple Deprivation (IMD) Decile"))
    out["imd_decile"] = pd.to_numeric(df[imd], errors="coerce") if imd else pd.NA
    return out.drop_duplicates("lsoa21cd").reset_index(drop=True)


__all__ = [
    "AREA_CONDITIONS",
    "BASIS_STATUSES",
    "CENSUS_MEASURES",
    "CONDITIONS",
    "QOF_GROUPS",
    "load_census_economic_activity",
    "load_census_population_by_group",
    "load_gp_registrations",
    "load_lsoa_lookup",
    "load_qof_prevalence",
]
