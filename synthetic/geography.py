"""The six local authorities of the Liverpool City Region, scaled to the size of the run.

LSOAs keep a realistic population (about 1,600 residents) in small runs rather than shrinking to a
handful of people each, because area-level methods (LSOA rates, elasticities, apportioning practice
prevalence to areas) only behave as they do on real data when areas are realistically sized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.config import ETHNICITIES, Geography


@dataclass(frozen=True)
class LocalAuthority:
    code: str
    name: str
    population: int  # 2021 census, rounded
    lsoas: int  # real number of LSOAs
    practices: int  # real number of GP practices, roughly
    practice_prefix: str
    districts: tuple[str, ...]  # postcode districts mostly inside the LA
    ethnicity_pct: tuple[float, ...]  # Asian, Black, Mixed, White, Other (2021 census, roughly)
    imd_decile_share: tuple[float, ...]  # share of LSOAs in IMD deciles 1 (most deprived) .. 10
    places: tuple[str, ...]


LOCAL_AUTHORITIES: tuple[LocalAuthority, ...] = (
    LocalAuthority(
        "E08000012",
        "Liverpool",
        486_100,
        298,
        85,
        "N82",
        tuple(f"L{i}" for i in range(1, 20)) + ("L24", "L25", "L27"),
        (4.4, 3.3, 3.4, 84.0, 4.9),
        (0.49, 0.13, 0.09, 0.07, 0.05, 0.05, 0.04, 0.03, 0.03, 0.02),
        (
            "Anfield",
            "Everton",
            "Walton",
            "Kensington",
            "Wavertree",
            "Allerton",
            "Garston",
            "Speke",
            "Toxteth",
            "Aigburth",
            "Norris Green",
            "Croxteth",
            "West Derby",
            "Old Swan",
            "Childwall",
            "Woolton",
            "Fazakerley",
            "Kirkdale",
            "Dingle",
            "Mossley Hill",
            "Belle Vale",
            "Clubmoor",
            "Tuebrook",
        ),
    ),
    LocalAuthority(
        "E08000011",
        "Knowsley",
        154_500,
        98,
        26,
        "N83",
        ("L26", "L28", "L32", "L33", "L34", "L36"),
        (1.1, 1.0, 1.5, 95.3, 1.1),
        (0.45, 0.15, 0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.02),
        ("Kirkby", "Huyton", "Prescot", "Halewood", "Whiston", "Stockbridge Village", "Page Moss"),
    ),
    LocalAuthority(
        "E08000014",
        "Sefton",
        279_300,
        189,
        45,
        "N84",
        ("L20", "L21", "L22", "L23", "L29", "L30", "L31", "L37", "L38", "PR8", "PR9"),
        (1.2, 0.5, 1.2, 96.2, 0.9),
        (0.20, 0.10, 0.08, 0.08, 0.09, 0.09, 0.10, 0.10, 0.09, 0.07),
        (
            "Bootle",
            "Crosby",
            "Southport",
            "Formby",
            "Maghull",
            "Litherland",
            "Netherton",
            "Ainsdale",
            "Birkdale",
        ),
    ),
    LocalAuthority(
        "E08000013",
        "St Helens",
        183_200,
        119,
        31,
        "N83",
        ("WA9", "WA10", "WA11", "WA12", "L35"),
        (1.2, 0.6, 1.0, 96.6, 0.6),
        (0.25, 0.13, 0.10, 0.10, 0.09, 0.09, 0.08, 0.07, 0.05, 0.04),
        (
            "Thatto Heath",
            "Parr",
            "Sutton",
            "Rainhill",
            "Haydock",
            "Newton-le-Willows",
            "Eccleston",
            "Billinge",
        ),
    ),
    LocalAuthority(
        "E08000015",
        "Wirral",
        320_200,
        206,
        47,
        "N85",
        tuple(f"CH{i}" for i in range(41, 50)) + tuple(f"CH{i}" for i in range(60, 64)),
        (1.5, 0.5, 1.4, 95.6, 1.0),
        (0.25, 0.10, 0.08, 0.08, 0.08, 0.08, 0.09, 0.09, 0.08, 0.07),
        (
            "Birkenhead",
            "Wallasey",
            "Bebington",
            "Heswall",
            "West Kirby",
            "Hoylake",
            "Moreton",
            "Bromborough",
            "Seacombe",
            "Greasby",
        ),
    ),
    LocalAuthority(
        "E06000006",
        "Halton",
        128_200,
        79,
        16,
        "N81",
        ("WA7", "WA8"),
        (1.1, 0.6, 1.1, 96.5, 0.7),
        (0.30, 0.15, 0.10, 0.10, 0.08, 0.08, 0.07, 0.05, 0.04, 0.03),
        ("Widnes", "Runcorn", "Halton Lea", "Castlefields", "Ditton", "Hough Green", "Murdishaw"),
    ),
)

#: the letters allowed in the last two characters of a UK postcode (no C, I, K, M, O, V)
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
PRACTICE_SUFFIXES = ("Medical Centre", "Health Centre", "Surgery", "Family Practice", "Medical Practice")
#: electoral wards hold about four LSOAs in small runs (real Liverpool wards: about ten)
LSOAS_PER_WARD = 4
POSTCODES_PER_PERSON = 1 / 35  # real English postcodes hold ~15 households, ~35 people
TERMINATED_SHARE = 0.1


@dataclass(frozen=True)
class Region:
    """Areas, practices and postcodes of one run. Row order is the index used everywhere else."""

    las: pd.DataFrame  # lad22cd, lad22nm, people
    lsoas: (
        pd.DataFrame
    )  # lsoa21cd, lsoa21nm, wd22cd, wd22nm, lad22cd, lad22nm, la_idx, imd_decile, main_practice, people
    practices: pd.DataFrame  # practice_code, practice_name, lad22cd, la_idx
    postcodes: pd.DataFrame  # pcds, lsoa_idx, lsoa21cd, lad22cd, current, dointr, doterm


def build_region(people: int, cfg: Geography, rng: np.random.Generator) -> Region:
    """Scale the region to ``people`` residents and lay out LSOAs, practices and postcodes."""
    shares = np.array([la.population for la in LOCAL_AUTHORITIES], dtype=float)
    shares /= shares.sum()
    la_people = rng.multinomial(people, shares)

    lsoa_rows: list[dict[str, object]] = []
    practice_rows: list[dict[str, object]] = []
    postcode_frames: list[pd.DataFrame] = []
    next_lsoa_code = 6400
    next_ward_code = 15000
    prefix_counter: dict[str, int] = {}
    for la_idx, la in enumerate(LOCAL_AUTHORITIES):
        n_lsoa = int(np.clip(round(la_people[la_idx] / cfg.people_per_lsoa), cfg.min_lsoas_per_la, la.lsoas))
        n_prac = int(np.clip(round(la_people[la_idx] / cfg.people_per_practice), 1, la.practices))
        # LSOA sizes vary around the mean; deciles follow the LA's published deprivation profile
        weights = rng.lognormal(0.0, 0.2, n_lsoa)
        lsoa_people = rng.multinomial(la_people[la_idx], weights / weights.sum())
        deciles = rng.choice(
            np.arange(1, 11), size=n_lsoa, p=np.array(la.imd_decile_share) / sum(la.imd_decile_share)
        )
        first_practice = len(practice_rows)
        for k in range(n_prac):
            counter = prefix_counter.get(la.practice_prefix, 0) + 1
            prefix_counter[la.practice_prefix] = counter
            number = counter if la.name != "St Helens" else 500 + counter
            place = la.places[k % len(la.places)]
            suffix = PRACTICE_SUFFIXES[(k // len(la.places) + k) % len(PRACTICE_SUFFIXES)]
            practice_rows.append(
                {
                    "practice_code": f"{la.practice_prefix}{number:03d}",
                    "practice_name": f"{place} {suffix}".upper(),
                    "lad22cd": la.code,
                    "la_idx": la_idx,
                }
            )
        # sectors of the LA's districts, dealt to LSOAs in turn; LSOAs sharing a sector split its units
        sectors = [(d, s) for s in range(10) for d in la.districts]
        lsoa_sector = np.arange(n_lsoa) % len(sectors)
        per_sector = np.bincount(lsoa_sector, minlength=len(sectors))
        unit_perm = {}
        # wards: runs of neighbouring LSOAs, named after the LA's places (no random draws, so the
        # other streams are unchanged by them)
        n_ward = max(1, -(-n_lsoa // LSOAS_PER_WARD))
        for j in range(n_lsoa):
            msoa = j // 5 + 1
            code = f"E01{next_lsoa_code:06d}"
            next_lsoa_code += 1
            ward = (j * n_ward) // n_lsoa
            ward_name = la.places[ward % len(la.places)] + (
                f" {ward // len(la.places) + 1}" if ward >= len(la.places) else ""
            )
            lsoa_rows.append(
                {
                    "lsoa21cd": code,
                    "lsoa21nm": f"{la.name} {msoa:03d}{'ABCDE'[j % 5]}",
                    "wd22cd": f"E05{next_ward_code + ward:06d}",
                    "wd22nm": ward_name,
                    "lad22cd": la.code,
                    "lad22nm": la.name,
                    "la_idx": la_idx,
                    "imd_decile": int(deciles[j]),
                    "main_practice": first_practice + (j * n_prac) // n_lsoa,
                    "people": int(lsoa_people[j]),
                }
            )
            s = int(lsoa_sector[j])
            district, sector_digit = sectors[s]
            if s not in unit_perm:
                unit_perm[s] = rng.permutation(len(INWARD_LETTERS) ** 2)
            slot = j // len(sectors)  # this LSOA's position among those sharing the sector
            capacity = len(INWARD_LETTERS) ** 2 // int(per_sector[s])
            n_pc = int(
                np.clip(round(lsoa_people[j] * POSTCODES_PER_PERSON / (1 - TERMINATED_SHARE)), 6, capacity)
            )
            units = unit_perm[s][slot * capacity : slot * capacity + n_pc]
            letters = np.array(list(INWARD_LETTERS))
            pcds = [f"{district} {sector_digit}{letters[u // 20]}{letters[u % 20]}" for u in units]
            n_term = max(1, int(round(n_pc * TERMINATED_SHARE)))
            current = np.ones(n_pc, dtype=bool)
            current[rng.choice(n_pc, size=n_term, replace=False)] = False
            intro_year = rng.integers(1980, 2016, n_pc)
            intro_month = rng.integers(1, 13, n_pc)
            term_year = rng.integers(2005, 2019, n_pc)
            postcode_frames.append(
                pd.DataFrame(
                    {
                        "pcds": pcds,
                        "lsoa_idx": len(lsoa_rows) - 1,
                        "lsoa21cd": code,
                        "lad22cd": la.code,
                        "current": current,
                        "dointr": [f"{y}{m:02d}" for y, m in zip(intro_year, intro_month, strict=True)],
                        "doterm": [
                            "" if c else f"{max(t, y + 1)}{m:02d}"
                            for c, t, y, m in zip(current, term_year, intro_year, intro_month, strict=True)
                        ],
                    }
                )
            )
        next_ward_code += n_ward
    las = pd.DataFrame(
        {
            "lad22cd": [la.code for la in LOCAL_AUTHORITIES],
            "lad22nm": [la.name for la in LOCAL_AUTHORITIES],
            "people": la_people,
        }
    )
    return Region(
        las=las,
        lsoas=pd.DataFrame(lsoa_rows),
        practices=pd.DataFrame(practice_rows),
        postcodes=pd.concat(postcode_frames, ignore_index=True),
    )


def ethnicity_probabilities() -> np.ndarray:
    """Rows: local authorities; columns: ``ETHNICITIES`` order; rows sum to one."""
    p = np.array([la.ethnicity_pct for la in LOCAL_AUTHORITIES], dtype=float)
    assert p.shape[1] == len(ETHNICITIES)
    return p / p.sum(axis=1, keepdims=True)
