"""A small synthetic population with planted recording errors, tokenised like the pseudonymiser.

Used by the linkage tests (and, at larger sizes, by ``benchmarks/link.py``) so linkage can be
tested on a known truth: every client record is a noisy copy of a person, most of whom have one
health record. Tokens are HMAC-SHA256 hex over the standardised values, with one key for all
fields, so forename/surname swaps and day/month transpositions show up as cross-field equality.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

import jellyfish
import numpy as np
import pandas as pd
import pytest

TOKEN_KEY = b"k" * 32
RESEARCH_KEY = b"r" * 32

NICKNAMES = {
    "ROBERT": ["BOB", "ROB", "BOBBY"],
    "WILLIAM": ["BILL", "WILL", "BILLY"],
    "ELIZABETH": ["LIZ", "BETH", "LIZZIE"],
    "MARGARET": ["MAGGIE", "PEGGY"],
    "JAMES": ["JIM", "JIMMY"],
    "KATHERINE": ["KATE", "KATIE"],
    "MICHAEL": ["MIKE", "MICK"],
    "JENNIFER": ["JEN", "JENNY"],
    "THOMAS": ["TOM", "TOMMY"],
    "SUSAN": ["SUE", "SUSIE"],
    "ANTHONY": ["TONY"],
    "PATRICIA": ["PAT", "TRISH"],
    "CHRISTOPHER": ["CHRIS"],
    "REBECCA": ["BECKY", "BEX"],
    "DANIEL": ["DAN", "DANNY"],
    "SAMANTHA": ["SAM"],
}
CANONICAL = {nick: full for full, nicks in NICKNAMES.items() for nick in nicks}

DEFAULT_ERRORS: dict[str, float] = {
    "forename_typo": 0.03,
    "nickname": 0.03,
    "surname_typo": 0.02,
    "surname_change": 0.02,
    "swap_names": 0.01,
    "dob_transpose": 0.015,
    "dob_typo": 0.02,
    "moved": 0.10,
    "postcode_missing": 0.02,
    "nhs_present": 0.2,
    "nhs_typo": 0.005,
    "no_health_record": 0.05,
    "duplicate_enrolment": 0.03,
}

_SYLLABLES = [
    "ar", "ben", "car", "dal", "el", "fin", "gar", "hol", "ing", "jon", "kel", "lan", "mor", "nor",
    "ost", "par", "quin", "ros", "sten", "tor", "ul", "ven", "wick", "yar", "zel", "ash", "brook",
    "ford", "ton", "ley", "son", "man", "well", "wood", "field", "by", "ham", "ridge", "dale",
]  # fmt: skip


@dataclass
class Population:
    """Cleartext standardised records of both sides plus the truth, before tokenisation."""

    clients: pd.DataFrame
    patients: pd.DataFrame
    truth: pd.DataFrame  # dataset, record_id, person_id
    errors: dict[str, float] = field(default_factory=dict)
    #: error kind (a key of DEFAULT_ERRORS, plus the groups "name_error" and "dob_error") ->
    #: client_refs it was planted on (only where it changed the record; "moved" may draw the same
    #: postcode again); "nhs_present" lists the records that carry an NHS number
    planted: dict[str, set[str]] = field(default_factory=dict)


def _names(rng: np.random.Generator, n: int, syllables: tuple[int, int]) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        k = rng.integers(syllables[0], syllables[1] + 1)
        out.add("".join(rng.choice(_SYLLABLES, size=k)).upper())
    return sorted(out)


def _typo(rng: np.random.Generator, word: str) -> str:
    if len(word) < 3:
        return word + "E"
    i = int(rng.integers(1, len(word)))
    kind = rng.integers(0, 3)
    letter = chr(ord("A") + int(rng.integers(0, 26)))
    if kind == 0:
        return word[:i] + letter + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + letter + word[i:]


#: Which part of a date of birth a typo hits, with its share (day, month, year).
DOB_TYPO_PARTS: tuple[str, ...] = ("day", "month", "year")
DOB_TYPO_SHARES: tuple[float, ...] = (0.4, 0.3, 0.3)


def _part(rng: np.random.Generator) -> int:
    return int(rng.choice(len(DOB_TYPO_PARTS), p=DOB_TYPO_SHARES))


def _dob_typo(d, step: int, part: str):
    """One mistyped digit: day +-1 or +-10 (kept to 1..28), month +-1 (the other way at 1 or 12),
    year +-1 or +-10; a day the new month or year lacks becomes the 28th."""
    if part == "day":
        return d.replace(day=max(1, min(28, d.day + step)))
    if part == "month":
        month = d.month + (1 if step > 0 else -1)
        changed = {"month": month if 1 <= month <= 12 else d.month - (1 if step > 0 else -1)}
    else:
        changed = {"year": d.year + step}
    try:
        return d.replace(**changed)
    except ValueError:  # 31 January to February, 29 February to a common year
        return d.replace(day=28, **changed)


def make_population(
    n_patients: int, n_clients: int, seed: int = 1, errors: dict[str, float] | None = None
) -> Population:
    """Patients are people registered with a GP; clients are noisy copies of some of them."""
    rates = {**DEFAULT_ERRORS, **(errors or {})}
    rng = np.random.default_rng(seed)
    surnames = _names(rng, max(200, n_patients // 50), (2, 3))
    surname_p = 1 / np.arange(1, len(surnames) + 1) ** 0.9
    surname_p /= surname_p.sum()
    # one- and two-syllable forenames: 1,560 possible, so the count is capped below that
    forenames = sorted(set(_names(rng, min(1200, max(150, n_patients // 400)), (1, 2))) | set(NICKNAMES))
    districts = (
        [f"L{i}" for i in range(1, 40)] + [f"WA{i}" for i in range(1, 12)] + [f"CH{i}" for i in range(41, 49)]
    )
    n_units = max(50, n_patients // 15)
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
    units = [
        f"{rng.choice(districts)} {rng.integers(0, 10)}{rng.choice(letters)}{rng.choice(letters)}"
        for _ in range(n_units)
    ]
    n_people = n_patients + n_clients  # the pool some clients come from have no health record
    dob = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 55 * 365, n_people), unit="D")
    people = pd.DataFrame(
        {
            "person_id": [f"PER{i:08d}" for i in range(n_people)],
            "forename": rng.choice(forenames, n_people),
            "surname": rng.choice(surnames, n_people, p=surname_p),
            "dob": dob.date,
            "sex": rng.choice(["M", "F"], n_people),
            "postcode": rng.choice(units, n_people),
            "nhs_number": [
                f"{x:010d}" for x in rng.choice(9_000_000_000, n_people, replace=False) + 1_000_000_000
            ],
            "ethnicity": rng.choice(
                ["White", "Asian", "Black", "Mixed", "Other"], n_people, p=[0.85, 0.06, 0.04, 0.03, 0.02]
            ),
            "lsoa21cd": [f"E0100{x:04d}" for x in rng.integers(0, 40, n_people)],
        }
    )
    patients = people.iloc[:n_patients].copy()
    patients.insert(0, "patient_id", [f"PAT{i:08d}" for i in range(n_patients)])

    # clients: mostly people with a health record, some without; some enrol twice
    n_unregistered = int(round(n_clients * rates["no_health_record"]))
    chosen = np.concatenate(
        [
            rng.choice(n_patients, n_clients - n_unregistered, replace=False),
            n_patients + rng.choice(n_clients, n_unregistered, replace=False),
        ]
    )
    n_dupes = int(round(n_clients * rates["duplicate_enrolment"]))
    chosen = np.concatenate([chosen, rng.choice(chosen, n_dupes, replace=False)])
    clients = people.iloc[chosen].reset_index(drop=True).copy()
    n = len(clients)
    clients.insert(0, "client_ref", [f"CL{i:07d}" for i in range(n)])
    clients.insert(1, "programme", rng.choice(["ways_to_work", "health_into_work"], n))
    clients["enrolment_date"] = (
        pd.to_datetime("2019-01-01") + pd.to_timedelta(rng.integers(0, 2500, n), unit="D")
    ).date

    def hit(rate: float) -> np.ndarray:
        return rng.random(n) < rate

    refs = clients["client_ref"].tolist()
    planted: dict[str, set[str]] = {
        "no_health_record": set(
            clients.loc[clients["person_id"].isin(people["person_id"].iloc[n_patients:]), "client_ref"]
        )
    }

    def plant(kind: str, i: int, *groups: str) -> None:
        for name in (kind, *groups):
            planted.setdefault(name, set()).add(refs[i])

    if n > n_clients:  # the second enrolment of a person (the first is the original record)
        for i in range(n_clients, n):
            plant("duplicate_enrolment", i)

    fn, sn = clients["forename"].tolist(), clients["surname"].tolist()
    for i in np.flatnonzero(hit(rates["nickname"])):
        if fn[i] in NICKNAMES:
            fn[i] = str(rng.choice(NICKNAMES[fn[i]]))
            plant("nickname", i, "name_error")
    for i in np.flatnonzero(hit(rates["forename_typo"])):
        fn[i] = _typo(rng, fn[i])
        plant("forename_typo", i, "name_error")
    for i in np.flatnonzero(hit(rates["surname_typo"])):
        sn[i] = _typo(rng, sn[i])
        plant("surname_typo", i, "name_error")
    for i in np.flatnonzero(hit(rates["surname_change"])):
        sn[i] = str(rng.choice(surnames))
        plant("surname_change", i, "name_error")
    for i in np.flatnonzero(hit(rates["swap_names"])):
        fn[i], sn[i] = sn[i], fn[i]
        plant("swap_names", i)
    clients["forename"], clients["surname"] = fn, sn

    dobs = list(clients["dob"])
    for i in np.flatnonzero(hit(rates["dob_transpose"])):
        d = dobs[i]
        if d.day <= 12 and d.day != d.month:
            dobs[i] = d.replace(day=d.month, month=d.day)
            plant("dob_transpose", i)
    # A date-of-birth typo is a slip of one digit in the day, the month or the year. The part comes
    # from its own stream so that adding it left every other planted error where it was.
    part_rng = np.random.default_rng([seed, 1])
    for i in np.flatnonzero(hit(rates["dob_typo"])):
        dobs[i] = _dob_typo(dobs[i], int(rng.choice([-1, 1, 10, -10])), DOB_TYPO_PARTS[_part(part_rng)])
        plant("dob_typo", i, "dob_error")
    clients["dob"] = dobs

    moved = hit(rates["moved"])
    clients.loc[moved, "postcode"] = rng.choice(units, int(moved.sum()))
    missing = hit(rates["postcode_missing"])
    clients.loc[missing, "postcode"] = None
    nhs = clients["nhs_number"].where(hit(rates["nhs_present"]))
    typo = hit(rates["nhs_typo"]) & nhs.notna().to_numpy()
    nhs[typo] = nhs[typo].map(lambda s: s[:-1] + str((int(s[-1]) + 1) % 10))
    clients["nhs_number"] = nhs
    for kind, rows in (("moved", moved), ("postcode_missing", missing), ("nhs_typo", typo)):
        for i in np.flatnonzero(np.asarray(rows)):
            plant(kind, int(i))
    for i in np.flatnonzero(nhs.notna().to_numpy()):
        plant("nhs_present", int(i))

    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "dataset": clients["programme"],
                    "record_id": clients["client_ref"],
                    "person_id": clients["person_id"],
                }
            ),
            pd.DataFrame(
                {
                    "dataset": "health_demographics",
                    "record_id": patients["patient_id"],
                    "person_id": patients["person_id"],
                }
            ),
        ],
        ignore_index=True,
    )
    return Population(
        clients=clients.drop(columns="person_id"),
        patients=patients.drop(columns="person_id"),
        truth=truth,
        errors=rates,
        planted=planted,
    )


# --------------------------------------------------------------------------------------------
# Tokenisation (same column semantics as the pseudonymised zone)


def research_pseudonym(values: pd.Series, key: bytes, prefix: str) -> pd.Series:
    return values.map(lambda v: prefix + hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:20])


def _tokens(values: pd.Series, key: bytes) -> pd.Series:
    cache: dict[str, str] = {}

    def token(v: object) -> str | None:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            return None
        s = str(v)
        if s not in cache:
            cache[s] = hmac.new(key, s.encode(), hashlib.sha256).hexdigest()
        return cache[s]

    return values.map(token).astype(object)


def _phonetic(values: pd.Series) -> pd.Series:
    return values.map(lambda v: jellyfish.metaphone(v) if isinstance(v, str) and v else None)


def tokenise(df: pd.DataFrame, key: bytes = TOKEN_KEY) -> pd.DataFrame:
    """Token columns of ARCHITECTURE.md from standardised cleartext columns."""
    dob = pd.to_datetime(pd.Series(df["dob"]), errors="coerce")
    postcode = df["postcode"]
    out = pd.DataFrame(index=df.index)
    out["t_nhs_number"] = _tokens(df["nhs_number"], key)
    out["t_forename"] = _tokens(df["forename"], key)
    out["t_forename_canonical"] = _tokens(df["forename"].map(lambda v: CANONICAL.get(v, v)), key)
    out["t_surname"] = _tokens(df["surname"], key)
    out["t_forename_phonetic"] = _tokens(_phonetic(df["forename"]), key)
    out["t_surname_phonetic"] = _tokens(_phonetic(df["surname"]), key)
    out["t_forename_initial"] = _tokens(df["forename"].str[:1], key)
    out["t_dob"] = _tokens(dob.dt.strftime("%Y-%m-%d"), key)
    out["t_dob_year"] = _tokens(dob.dt.strftime("%Y"), key)
    out["t_dob_month"] = _tokens(dob.dt.strftime("%m"), key)
    out["t_dob_day"] = _tokens(dob.dt.strftime("%d"), key)
    out["t_postcode"] = _tokens(postcode, key)
    out["t_postcode_sector"] = _tokens(postcode.str[:-2], key)
    out["t_postcode_district"] = _tokens(postcode.str.split(" ").str[0], key)
    out["sex"] = df["sex"].to_numpy()
    out["year_of_birth"] = dob.dt.year.to_numpy()
    out["ethnicity"] = df["ethnicity"].to_numpy()
    out["lsoa21cd"] = df["lsoa21cd"].to_numpy()
    return out


def write_workspace_tables(pop: Population, root: Path, research_key: bytes = RESEARCH_KEY) -> None:
    """Write the pseudonymised zone, the truth and an IMD lookup as the pipeline would."""
    left = tokenise(pop.clients)
    left.insert(
        0,
        "client_pseudonym",
        research_pseudonym(pop.clients["programme"] + ":" + pop.clients["client_ref"], research_key, "C"),
    )
    left.insert(1, "programme", pop.clients["programme"].to_numpy())
    left["enrolment_date"] = pop.clients["enrolment_date"].to_numpy()
    right = tokenise(pop.patients)
    right.insert(0, "patient_pseudonym", research_pseudonym(pop.patients["patient_id"], research_key, "P"))
    for name, table in (("employment_support", left), ("health_demographics", right)):
        out = root / "pseudonymised" / name
        out.mkdir(parents=True, exist_ok=True)
        table.to_parquet(out / "part-00000.parquet", index=False)
    (root / "truth").mkdir(parents=True, exist_ok=True)
    pop.truth.to_parquet(root / "truth" / "record_links.parquet", index=False)
    (root / "reference").mkdir(parents=True, exist_ok=True)
    lsoas = sorted(set(pop.clients["lsoa21cd"]) | set(pop.patients["lsoa21cd"]))
    pd.DataFrame(
        {
            "lsoa21cd": lsoas,
            "lsoa21nm": [f"Area {i}" for i in range(len(lsoas))],
            "lad22cd": "E08000012",
            "lad22nm": "Liverpool",
            "imd_decile": [1 + i % 10 for i in range(len(lsoas))],
        }
    ).to_csv(root / "reference" / "lsoa_lookup.csv", index=False)


# --------------------------------------------------------------------------------------------
# The generator's own guarantees (the linkage tests rely on them)


def test_population_plants_errors_and_truth() -> None:
    pop = make_population(600, 200, seed=3)
    assert len(pop.patients) == 600
    assert len(pop.clients) == 200 + round(200 * 0.03)
    assert set(pop.truth["dataset"]) == {"ways_to_work", "health_into_work", "health_demographics"}
    assert pop.clients["client_ref"].is_unique


def test_population_records_each_planted_error_kind_per_record() -> None:
    """Diagnostics classify missed links by what was planted: every kind is recorded per record."""
    pop = make_population(3000, 1000, seed=2, errors={"dob_typo": 0.3, "swap_names": 0.05})
    truth = pop.truth.set_index("record_id")["person_id"]
    patients = pop.patients.assign(
        person_id=pop.patients["patient_id"].map(pop.truth.set_index("record_id")["person_id"])
    ).set_index("person_id")
    clients = pop.clients.set_index("client_ref")
    for kind in ("forename_typo", "surname_typo", "swap_names", "dob_typo", "moved", "nhs_present"):
        assert pop.planted.get(kind), kind
    assert pop.planted["dob_typo"] <= pop.planted["dob_error"]
    assert len(pop.planted["duplicate_enrolment"]) == round(1000 * 0.03)
    parts = {"day": 0, "month": 0, "year": 0}
    for ref in pop.planted["dob_typo"] - pop.planted.get("dob_transpose", set()):
        person = truth[ref]
        if person not in patients.index:
            continue
        was, now = pd.Timestamp(patients.loc[person, "dob"]), pd.Timestamp(clients.loc[ref, "dob"])
        changed = [p for p in parts if getattr(was, p) != getattr(now, p)]
        assert len(changed) <= 2, (was, now)  # one part, or a month/year slip that moved the 31st to the 28th
        for p in changed:
            parts[p] += 1
    assert min(parts.values()) >= 10, parts  # day, month and year slips all occur


@pytest.mark.parametrize("day, month", [(3, 7), (11, 12)])
def test_day_and_month_tokens_share_a_domain(day: int, month: int) -> None:
    a = tokenise(
        pd.DataFrame(
            {
                "dob": [f"1980-{month:02d}-{day:02d}"],
                "forename": ["A"],
                "surname": ["B"],
                "sex": ["M"],
                "postcode": ["L8 1AB"],
                "nhs_number": [None],
                "ethnicity": ["White"],
                "lsoa21cd": ["E1"],
            }
        )
    )
    b = tokenise(
        pd.DataFrame(
            {
                "dob": [f"1980-{day:02d}-{month:02d}"],
                "forename": ["B"],
                "surname": ["A"],
                "sex": ["M"],
                "postcode": ["L8 1AB"],
                "nhs_number": [None],
                "ethnicity": ["White"],
                "lsoa21cd": ["E1"],
            }
        )
    )
    assert (
        a.loc[0, "t_dob_day"] == b.loc[0, "t_dob_month"] and a.loc[0, "t_dob_month"] == b.loc[0, "t_dob_day"]
    )
    assert a.loc[0, "t_forename"] == b.loc[0, "t_surname"]
    assert a.loc[0, "t_postcode_sector"] == b.loc[0, "t_postcode_sector"]
