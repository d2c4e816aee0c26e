"""Employment-support clients: who enrols, what they report, how they fare, and how their
identifiers are mangled on the way into each provider's extract.

Selection, self-report agreement and outcomes follow planted models whose parameters are all in
``SynthConfig`` and ``truth/planted.json``, so the equity audit, the concordance analysis and the
success-factor models can each be scored against a known answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic import names, nhs_number
from synthetic.config import AGE_BANDS, CONDITIONS, PROGRAMMES, SynthConfig
from synthetic.population import age_band
from synthetic.representation import planted_representation_ratios

ENROL_START = np.datetime64("2021-01-01")
ENROL_END = np.datetime64("2023-12-31")
EXTRACT_DATE = np.datetime64("2025-09-30")
MONTH_ABBR = np.array(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], dtype=object
)

WTW_CONDITION_COLUMNS = {
    "depression": "Depression",
    "smi": "Severe Mental Illness",
    "epilepsy": "Epilepsy",
    "copd": "COPD",
    "diabetes": "Diabetes",
    "chd": "CHD",
    "hypertension": "Hypertension",
    "learning_disability": "Learning Disability",
    "osteoporosis": "Osteoporosis",
    "asthma": "Asthma",
}
HIW_CONDITION_COLUMNS = {
    "depression": "HC_Depression",
    "smi": "HC_SMI",
    "epilepsy": "HC_Epilepsy",
    "copd": "HC_COPD",
    "diabetes": "HC_Diabetes",
    "chd": "HC_CHD",
    "hypertension": "HC_Hypertension",
    "learning_disability": "HC_LD",
    "osteoporosis": "HC_Osteoporosis",
    "asthma": "HC_Asthma",
}
WTW_COLUMNS = (
    [
        "Client Ref",
        "First Name",
        "Last Name",
        "DOB",
        "Gender",
        "Postcode",
        "NHS Number",
        "Ethnic Group",
        "Start Date",
        "Local Authority",
    ]
    + list(WTW_CONDITION_COLUMNS.values())
    + ["Job Start", "Job Start Date", "Sustained 26 Weeks", "Keyworker Notes", "Telephone"]
)
HIW_COLUMNS = (
    [
        "ParticipantID",
        "Forename",
        "Surname",
        "DateOfBirth",
        "Sex",
        "PostCode",
        "NHSNo",
        "EthnicityCode",
        "EnrolmentDate",
        "LA",
    ]
    + list(HIW_CONDITION_COLUMNS.values())
    + ["Outcome_JobStart", "Outcome_JobStartDate", "Outcome_Sustained26", "Address Line 1"]
)
ERROR_FLAGS = (
    "accent_dropped",
    "nickname",
    "forename_typo",
    "surname_typo",
    "name_swap",
    "dob_day_month_transposed",
    "old_postcode",
    "postcode_unformatted",
    "nhs_number_present",
    "nhs_number_mistyped",
)
DEFECTS = (
    "missing_client_ref",
    "enrolment_date_out_of_window",
    "unknown_sex_code",
    "duplicate_client_ref",
    "implausible_dob",
)
NOTES = (
    "Attended induction",
    "Needs CV support",
    "Referred by JCP",
    "Interested in warehouse work",
    "Confidence building sessions",
    "Travel costs agreed",
    "Wants part-time hours",
    "Missed appointment, rebooked",
    "Interview skills workshop",
    "Referred by GP social prescriber",
    "Looking at care sector roles",
)
STREETS = (
    "Church Road",
    "Park Avenue",
    "Queens Drive",
    "Stanley Road",
    "Smithdown Road",
    "Picton Road",
    "County Road",
    "Moss Lane",
    "Victoria Street",
    "Derby Road",
    "Mill Lane",
    "Station Road",
    "Green Lane",
    "Rice Lane",
)
KEYBOARD_NEIGHBOURS = {
    "a": "qwsz",
    "b": "vghn",
    "c": "xdfv",
    "d": "serfcx",
    "e": "wsdr",
    "f": "drtgvc",
    "g": "ftyhbv",
    "h": "gyujnb",
    "i": "ujko",
    "j": "huikmn",
    "k": "jiolm",
    "l": "kop",
    "m": "njk",
    "n": "bhjm",
    "o": "iklp",
    "p": "ol",
    "q": "wa",
    "r": "edft",
    "s": "awedxz",
    "t": "rfgy",
    "u": "yhji",
    "v": "cfgb",
    "w": "qase",
    "x": "zsdc",
    "y": "tghu",
    "z": "asx",
}


@dataclass(frozen=True)
class Enrolments:
    truth: pd.DataFrame  # one row per extract row: person, true values, errors, defects
    ways_to_work: pd.DataFrame  # provider layout, as written
    health_into_work: pd.DataFrame  # provider layout, as written
    planted: dict[str, object]  # calibrated intercepts and realised agreement figures


def _logistic_intercept(lin: np.ndarray, target: float) -> float:
    """The intercept that makes the mean of ``sigmoid(intercept + lin)`` equal ``target`` (bisection)."""
    if len(lin) == 0:
        return 0.0
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(mid + lin)))).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _log_or(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(values))
    for k, v in table.items():
        out += np.log(v) * (values == k)
    return out


def _years_between(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Completed years from ``start`` to ``end`` (datetime64[D] arrays), as on a birthday."""
    s = pd.DatetimeIndex(start)
    e = pd.DatetimeIndex(end)
    years = e.year - s.year - ((e.month < s.month) | ((e.month == s.month) & (e.day < s.day)))
    return np.asarray(years, dtype=np.int64)


def build_enrolments(
    persons: pd.DataFrame, diagnosis: dict[str, np.ndarray], cfg: SynthConfig, rng: np.random.Generator
) -> Enrolments:
    sel = cfg.selection
    n = len(persons)
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    death = persons["date_of_death"].to_numpy().astype("datetime64[D]")
    span = int((ENROL_END - ENROL_START).astype(np.int64)) + 1
    when = ENROL_START + rng.integers(0, span, n).astype("timedelta64[D]")
    age = _years_between(dob, when)
    eligible = (age >= 16) & (age <= 64) & (np.isnat(death) | (death > when))
    band = np.array(AGE_BANDS, dtype=object)[
        np.clip(np.searchsorted([16, 25, 35, 50], age, side="right") - 1, 0, 3)
    ]
    female = persons["sex"].to_numpy() == "F"
    quintile = ((persons["imd_decile"].to_numpy() + 1) // 2).astype(str).astype(object)
    ethnicity = persons["ethnicity"].to_numpy()
    status = persons["economic_status"].to_numpy()
    recorded = {c: persons[f"has_{c}"].to_numpy() & (diagnosis[c] <= when) for c in CONDITIONS}

    lin = (
        _log_or(band, sel.or_age_band)
        + np.log(sel.or_female) * female
        + _log_or(ethnicity, sel.or_ethnicity)
        + _log_or(quintile, sel.or_imd_quintile)
        + _log_or(status, sel.or_economic_status)
    )
    for c, v in sel.or_condition.items():
        lin += np.log(v) * recorded[c]
    if "under_served_area" in persons:  # planted under-served wards (synthetic.targeting)
        lin += np.log(cfg.under_served.enrolment_odds_ratio) * persons["under_served_area"].to_numpy(bool)
    intercept = _logistic_intercept(lin[eligible], sel.rate)
    p = 1 / (1 + np.exp(-(intercept + lin)))
    chosen = np.flatnonzero(eligible & (rng.random(n) < p))

    # programme: health-led programme more likely for people with a recorded condition
    any_condition = np.zeros(n, dtype=bool)
    for c in CONDITIONS:
        any_condition |= recorded[c]
    p_hiw = np.where(
        any_condition[chosen], sel.health_into_work_share_with_condition, sel.health_into_work_share
    )
    programme = np.where(rng.random(len(chosen)) < p_hiw, PROGRAMMES[1], PROGRAMMES[0]).astype(object)
    # what the equity audit should find against its comparison population (no random draws)
    groups = {
        "age_band": band,
        "sex": persons["sex"].to_numpy(),
        "ethnicity": ethnicity,
        "imd_quintile": quintile,
    }
    representation = planted_representation_ratios(
        persons,
        groups,
        {**groups, "age_band": age_band(persons["age_at_census"].to_numpy())},
        np.where(eligible, p, 0.0),
        np.where(any_condition, sel.health_into_work_share_with_condition, sel.health_into_work_share),
        cfg.identifier_errors.duplicate_enrolment,
    )

    # duplicate enrolments: the same person again, later (or earlier), as a new client
    errs = cfg.identifier_errors
    dup = np.flatnonzero(rng.random(len(chosen)) < errs.duplicate_enrolment)
    gap = rng.integers(30, 400, len(dup)).astype("timedelta64[D]")
    dup_when = when[chosen[dup]] + gap
    # never after the window or after death: then the second enrolment is the earlier one
    too_late = (dup_when > ENROL_END) | (dup_when >= death[chosen[dup]])
    dup_when = np.where(too_late, np.maximum(when[chosen[dup]] - gap, ENROL_START), dup_when)
    dup_programme = np.where(
        rng.random(len(dup)) < 0.5,
        programme[dup],
        np.where(programme[dup] == PROGRAMMES[0], PROGRAMMES[1], PROGRAMMES[0]),
    ).astype(object)

    person_row = np.concatenate([chosen, chosen[dup]])
    enrol_date = np.concatenate([when[chosen], dup_when])
    prog = np.concatenate([programme, dup_programme])
    is_dup = np.concatenate([np.zeros(len(chosen), bool), np.ones(len(dup), bool)])
    m = len(person_row)
    age_at = _years_between(dob[person_row], enrol_date)
    band_at = np.array(AGE_BANDS, dtype=object)[
        np.clip(np.searchsorted([16, 25, 35, 50], age_at, side="right") - 1, 0, 3)
    ]
    gp = {
        c: persons[f"has_{c}"].to_numpy()[person_row] & (diagnosis[c][person_row] <= enrol_date)
        for c in CONDITIONS
    }

    # self-reported conditions: planted sensitivity; false positives set to reach the planted PPV
    sr: dict[str, np.ndarray] = {}
    fpr: dict[str, float] = {}
    for c in CONDITIONS:
        sens = cfg.self_report.sensitivity[c]
        ppv = cfg.self_report.ppv[c]
        prev = float(gp[c].mean()) if m else 0.0
        fpr[c] = float(np.clip(sens * prev * (1 - ppv) / max(ppv * (1 - prev), 1e-12), 0.0, 1.0))
        u = rng.random(m)
        sr[c] = np.where(gp[c], u < sens, u < fpr[c])

    # outcomes: logistic models on what the research dataset will hold
    out = cfg.outcomes
    sex_e = persons["sex"].to_numpy()[person_row]
    eth_e = ethnicity[person_row]
    quint_e = quintile[person_row]
    lin_job = (
        _log_or(band_at, out.or_age_band)
        + np.log(out.or_female) * (sex_e == "F")
        + _log_or(eth_e, out.or_ethnicity)
        + _log_or(quint_e, out.or_imd_quintile)
        + _log_or(prog, out.or_programme)
    )
    for c, v in out.or_condition.items():
        lin_job += np.log(v) * gp[c]
    a_job = _logistic_intercept(lin_job, out.job_start_rate)
    job = rng.random(m) < 1 / (1 + np.exp(-(a_job + lin_job)))
    days = np.minimum(1 + rng.exponential(out.mean_days_to_job, m), 365).astype(np.int64)
    job_date = np.where(job, enrol_date + days.astype("timedelta64[D]"), np.datetime64("NaT"))
    lin_sus = _log_or(prog, out.sustained_or_programme)
    for c, v in out.sustained_or_condition.items():
        lin_sus += np.log(v) * gp[c]
    a_sus = _logistic_intercept(lin_sus[job], out.sustained_rate)
    sustained = job & (rng.random(m) < 1 / (1 + np.exp(-(a_sus + lin_sus))))

    truth = pd.DataFrame(
        {
            "programme": prog,
            "person_row": person_row,
            "person_id": persons["person_id"].to_numpy()[person_row],
            "duplicate_enrolment": is_dup,
            "enrolment_date": enrol_date,
            "age_band": band_at,
            "job_start": job,
            "job_start_date": job_date,
            "sustained_26_weeks": sustained,
        }
    )
    for c in CONDITIONS:
        truth[f"gp_{c}"] = gp[c]
        truth[f"sr_{c}"] = sr[c]
    truth = _apply_identifier_errors(truth, persons, cfg, rng)

    datasets = []
    for p_idx, programme_name in enumerate(PROGRAMMES):
        part = truth[truth["programme"] == programme_name].sort_values(
            ["enrolment_date", "person_id"], kind="stable"
        )
        part = part.reset_index(drop=True)
        part["source_row"] = np.arange(1, len(part) + 1)
        prefix = "WTW" if p_idx == 0 else "HIW"
        ids = np.cumsum(rng.integers(1, 4, len(part))) + 1000
        part["client_ref"] = [f"{prefix}{i:06d}" for i in ids]
        part = _apply_defects(part, cfg, rng, two_digit_year=p_idx == 1)
        datasets.append(part)
    wtw = _ways_to_work_layout(datasets[0], persons, rng)
    hiw = _health_into_work_layout(datasets[1], persons, rng)
    truth = pd.concat(datasets, ignore_index=True)
    planted = {
        "selection_intercept": intercept,
        "eligible_residents": int(eligible.sum()),
        "clients": int(len(chosen)),
        "job_start_intercept": a_job,
        "sustained_intercept": a_sus,
        "self_report_false_positive_rate": fpr,
        "representation_ratios": representation,
    }
    return Enrolments(truth=truth, ways_to_work=wtw, health_into_work=hiw, planted=planted)


# ---------------------------------------------------------------------------------------------
# identifier errors


def _typo(rng: np.random.Generator, word: str) -> str:
    """One keyboard-style error: substitute a neighbour key, drop, double or transpose a letter."""
    if len(word) < 2:
        return word + "e"
    for _ in range(5):
        i = int(rng.integers(0, len(word)))
        kind = int(rng.integers(0, 4))
        ch = word[i]
        if kind == 0 and ch.lower() in KEYBOARD_NEIGHBOURS:
            opts = KEYBOARD_NEIGHBOURS[ch.lower()]
            new = opts[int(rng.integers(0, len(opts)))]
            new = new.upper() if ch.isupper() else new
            out = word[:i] + new + word[i + 1 :]
        elif kind == 1 and len(word) > 3:
            out = word[:i] + word[i + 1 :]
        elif kind == 2:
            out = word[:i] + ch + word[i:]
        else:
            j = min(i, len(word) - 2)
            out = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        if out != word:
            return out
    return word + word[-1]


def _apply_identifier_errors(
    truth: pd.DataFrame, persons: pd.DataFrame, cfg: SynthConfig, rng: np.random.Generator
) -> pd.DataFrame:
    e = cfg.identifier_errors
    rows = truth["person_row"].to_numpy()
    m = len(rows)
    forename = persons["forename"].to_numpy()[rows].copy()
    surname = persons["surname"].to_numpy()[rows].copy()
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")[rows]
    flags = {f: np.zeros(m, dtype=bool) for f in ERROR_FLAGS}

    accented = np.array(
        [names.has_accent(f) or names.has_accent(s) for f, s in zip(forename, surname, strict=True)]
    )
    flags["accent_dropped"] = accented & (rng.random(m) < e.accent_dropped)
    for i in np.flatnonzero(flags["accent_dropped"]):
        forename[i] = names.strip_accents(forename[i])
        surname[i] = names.strip_accents(surname[i])

    has_nick = np.array([f in names.NICKNAMES for f in forename], dtype=bool)
    flags["nickname"] = has_nick & (rng.random(m) < e.nickname)
    for i in np.flatnonzero(flags["nickname"]):
        options = names.NICKNAMES[forename[i]]
        forename[i] = options[int(rng.integers(0, len(options)))]

    flags["forename_typo"] = rng.random(m) < e.forename_typo
    for i in np.flatnonzero(flags["forename_typo"]):
        forename[i] = _typo(rng, forename[i])
    flags["surname_typo"] = rng.random(m) < e.surname_typo
    for i in np.flatnonzero(flags["surname_typo"]):
        surname[i] = _typo(rng, surname[i])
    flags["name_swap"] = rng.random(m) < e.name_swap
    swap = flags["name_swap"]
    forename[swap], surname[swap] = surname[swap], forename[swap].copy()

    d = pd.DatetimeIndex(dob)
    day, month, year = d.day.to_numpy(), d.month.to_numpy(), d.year.to_numpy()
    can_transpose = (day <= 12) & (day != month)
    flags["dob_day_month_transposed"] = can_transpose & (rng.random(m) < e.dob_day_month_transposed)
    rec_day = np.where(flags["dob_day_month_transposed"], month, day)
    rec_month = np.where(flags["dob_day_month_transposed"], day, month)

    flags["old_postcode"] = rng.random(m) < e.old_postcode
    postcode = np.where(
        flags["old_postcode"],
        persons["previous_postcode"].to_numpy()[rows],
        persons["postcode"].to_numpy()[rows],
    ).astype(object)
    flags["postcode_unformatted"] = rng.random(m) < e.postcode_unformatted
    style = rng.integers(0, 3, m)
    for i in np.flatnonzero(flags["postcode_unformatted"]):
        pc = postcode[i]
        postcode[i] = (
            pc.replace(" ", "")
            if style[i] == 0
            else pc.lower()
            if style[i] == 1
            else pc.replace(" ", "").lower()
        )

    true_nhs = persons["nhs_number"].to_numpy()[rows]
    flags["nhs_number_present"] = rng.random(m) < e.nhs_number_present
    flags["nhs_number_mistyped"] = flags["nhs_number_present"] & (rng.random(m) < e.nhs_number_mistyped)
    nhs = np.where(flags["nhs_number_present"], true_nhs, None).astype(object)
    nhs_kind = np.full(m, None, dtype=object)
    bad = np.flatnonzero(flags["nhs_number_mistyped"])
    if len(bad):
        pool = persons["nhs_number"].to_numpy()
        nhs[bad], nhs_kind[bad] = nhs_number.mistype(rng, true_nhs[bad], pool)

    truth = truth.copy()
    truth["rec_forename"] = forename
    truth["rec_surname"] = surname
    truth["rec_dob_day"] = rec_day
    truth["rec_dob_month"] = rec_month
    truth["rec_dob_year"] = year
    truth["rec_postcode"] = postcode
    truth["rec_nhs_number"] = nhs
    truth["nhs_number_error_kind"] = nhs_kind
    for f in ERROR_FLAGS:
        truth[f] = flags[f]
    return truth


# ---------------------------------------------------------------------------------------------
# row defects (validation must quarantine these rows)


def _apply_defects(
    part: pd.DataFrame, cfg: SynthConfig, rng: np.random.Generator, two_digit_year: bool
) -> pd.DataFrame:
    """Give a few rows one defect each. With two-digit years a 19th-century birth would look like
    a plausible 20th-century one, so that provider gets impossible days and too-recent births only."""
    rates = cfg.row_defects.model_dump()
    m = len(part)
    probs = np.array([rates[d] for d in DEFECTS])
    u = rng.random(m)
    bins = np.cumsum(probs)
    which = np.searchsorted(bins, u, side="right")
    defect = np.where(which < len(DEFECTS), np.array(DEFECTS + ("",), dtype=object)[which], None)
    defect = np.where(defect == "", None, defect).astype(object)
    # a duplicated reference must copy a row that is itself fine; the first row has nothing to copy
    defect[0:1] = np.where(defect[0:1] == "duplicate_client_ref", None, defect[0:1])
    part = part.copy()
    part["defect"] = defect
    part["rec_client_ref"] = part["client_ref"].astype(object)
    part["rec_enrolment_date_text"] = None
    part["rec_sex_code"] = None
    part["rec_dob_text"] = None
    refs = part["client_ref"].to_numpy()
    for i in np.flatnonzero(defect == "missing_client_ref"):
        part.iat[i, part.columns.get_loc("rec_client_ref")] = ""
    for i in np.flatnonzero(defect == "duplicate_client_ref"):
        clean = np.flatnonzero(defect[:i] == None)  # noqa: E711 (elementwise comparison)
        if len(clean) == 0:
            defect[i] = None
            part.iat[i, part.columns.get_loc("defect")] = None
            continue
        part.iat[i, part.columns.get_loc("rec_client_ref")] = refs[clean[-1]]
    for i in np.flatnonzero(defect == "enrolment_date_out_of_window"):
        future = rng.random() < 0.5
        year = int(rng.integers(2027, 2031)) if future else int(rng.integers(2016, 2019))
        bad = np.datetime64(f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}")
        part.iat[i, part.columns.get_loc("rec_enrolment_date_text")] = str(bad)
    for i in np.flatnonzero(defect == "unknown_sex_code"):
        part.iat[i, part.columns.get_loc("rec_sex_code")] = ("U", "X", "9", "Unknown")[
            int(rng.integers(0, 4))
        ]
    for i in np.flatnonzero(defect == "implausible_dob"):
        kind = int(rng.choice([0, 2])) if two_digit_year else int(rng.integers(0, 3))
        text = (
            "1985-02-31",
            f"18{int(rng.integers(80, 100))}-06-15",
            f"20{int(rng.integers(20, 24))}-05-04",
        )[kind]
        part.iat[i, part.columns.get_loc("rec_dob_text")] = text
    return part


# ---------------------------------------------------------------------------------------------
# provider layouts


def _fmt_dmy_slash(day: np.ndarray, month: np.ndarray, year: np.ndarray) -> np.ndarray:
    return np.array(
        [f"{d:02d}/{mo:02d}/{y:04d}" for d, mo, y in zip(day, month, year, strict=True)], dtype=object
    )


def _fmt_d_mon_yy(day: np.ndarray, month: np.ndarray, year: np.ndarray) -> np.ndarray:
    return np.array(
        [f"{d:02d}-{MONTH_ABBR[mo - 1]}-{y % 100:02d}" for d, mo, y in zip(day, month, year, strict=True)],
        dtype=object,
    )


def _date_parts(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = pd.DatetimeIndex(dates)
    return d.day.to_numpy(), d.month.to_numpy(), d.year.to_numpy()


def _text_parts(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ISO ``YYYY-MM-DD`` texts that may name impossible days (e.g. 31 February)."""
    parts = np.array([t.split("-") for t in texts], dtype=np.int64).reshape(-1, 3)
    return parts[:, 2], parts[:, 1], parts[:, 0]


DateFormatter = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _common_fields(part: pd.DataFrame, fmt: DateFormatter) -> dict[str, np.ndarray]:
    """Dates of birth, enrolment and job start as text in the provider's format, defects included."""
    dob = fmt(
        part["rec_dob_day"].to_numpy(), part["rec_dob_month"].to_numpy(), part["rec_dob_year"].to_numpy()
    )
    bad_dob = part["rec_dob_text"].notna().to_numpy()
    if bad_dob.any():
        dob[bad_dob] = fmt(*_text_parts(part.loc[bad_dob, "rec_dob_text"].to_numpy()))
    enrol = fmt(*_date_parts(part["enrolment_date"].to_numpy()))
    bad_enrol = part["rec_enrolment_date_text"].notna().to_numpy()
    if bad_enrol.any():
        enrol[bad_enrol] = fmt(*_text_parts(part.loc[bad_enrol, "rec_enrolment_date_text"].to_numpy()))
    job_dates = part["job_start_date"].to_numpy()
    job_text = np.full(len(part), "", dtype=object)
    has_job = ~np.isnat(job_dates)
    if has_job.any():
        job_text[has_job] = fmt(*_date_parts(job_dates[has_job]))
    return {"dob": dob, "enrol": enrol, "job_date": job_text}


def _ways_to_work_layout(part: pd.DataFrame, persons: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = part["person_row"].to_numpy()
    f = _common_fields(part, _fmt_dmy_slash)
    sex = np.where(persons["sex"].to_numpy()[rows] == "F", "Female", "Male").astype(object)
    bad_sex = part["rec_sex_code"].notna().to_numpy()
    sex[bad_sex] = part.loc[bad_sex, "rec_sex_code"].to_numpy()
    yn = np.array(["N", "Y"], dtype=object)
    notes = np.array(NOTES, dtype=object)[rng.integers(0, len(NOTES), len(part))]
    mention = rng.random(len(part)) < 0.2
    notes = np.where(
        mention,
        [f"Spoke to {fn} - {n[0].lower()}{n[1:]}" for fn, n in zip(part["rec_forename"], notes, strict=True)],
        notes,
    )
    phone = np.array([f"07700 900{x:03d}" for x in rng.integers(0, 1000, len(part))], dtype=object)
    out = {
        "Client Ref": part["rec_client_ref"].to_numpy(),
        "First Name": part["rec_forename"].to_numpy(),
        "Last Name": part["rec_surname"].to_numpy(),
        "DOB": f["dob"],
        "Gender": sex,
        "Postcode": part["rec_postcode"].to_numpy(),
        "NHS Number": part["rec_nhs_number"].fillna("").to_numpy(),
        "Ethnic Group": persons["ethnicity"].to_numpy()[rows],
        "Start Date": f["enrol"],
        "Local Authority": persons["lad22nm"].to_numpy()[rows],
    }
    for c, col in WTW_CONDITION_COLUMNS.items():
        out[col] = yn[part[f"sr_{c}"].to_numpy().astype(int)]
    out["Job Start"] = yn[part["job_start"].to_numpy().astype(int)]
    out["Job Start Date"] = f["job_date"]
    out["Sustained 26 Weeks"] = yn[part["sustained_26_weeks"].to_numpy().astype(int)]
    out["Keyworker Notes"] = notes
    out["Telephone"] = phone
    return pd.DataFrame(out, columns=WTW_COLUMNS)


def _health_into_work_layout(
    part: pd.DataFrame, persons: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    rows = part["person_row"].to_numpy()
    f = _common_fields(part, _fmt_d_mon_yy)
    sex = persons["sex"].to_numpy()[rows].astype(object)
    bad_sex = part["rec_sex_code"].notna().to_numpy()
    sex[bad_sex] = part.loc[bad_sex, "rec_sex_code"].to_numpy()
    # some keyers type surnames in capitals: a formatting difference standardisation must absorb
    upper = rng.random(len(part)) < 0.3
    surname = np.where(upper, [s.upper() for s in part["rec_surname"]], part["rec_surname"].to_numpy())
    flag = np.array(["0", "1"], dtype=object)
    address = np.array(
        [
            f"{k} {STREETS[s]}"
            for k, s in zip(
                rng.integers(1, 200, len(part)), rng.integers(0, len(STREETS), len(part)), strict=True
            )
        ],
        dtype=object,
    )
    out = {
        "ParticipantID": part["rec_client_ref"].to_numpy(),
        "Forename": part["rec_forename"].to_numpy(),
        "Surname": surname,
        "DateOfBirth": f["dob"],
        "Sex": sex,
        "PostCode": part["rec_postcode"].to_numpy(),
        "NHSNo": part["rec_nhs_number"].fillna("").to_numpy(),
        "EthnicityCode": np.array([e[0] for e in persons["ethnicity"].to_numpy()[rows]], dtype=object),
        "EnrolmentDate": f["enrol"],
        "LA": persons["lad22nm"].to_numpy()[rows],
    }
    for c, col in HIW_CONDITION_COLUMNS.items():
        out[col] = flag[part[f"sr_{c}"].to_numpy().astype(int)]
    out["Outcome_JobStart"] = flag[part["job_start"].to_numpy().astype(int)]
    out["Outcome_JobStartDate"] = f["job_date"]
    out["Outcome_Sustained26"] = flag[part["sustained_26_weeks"].to_numpy().astype(int)]
    out["Address Line 1"] = address
    return pd.DataFrame(out, columns=HIW_COLUMNS)
