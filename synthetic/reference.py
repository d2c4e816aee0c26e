"""Published-style area data under ``reference/``: lookups, census, QOF, GP registrations by LSOA.

They are aggregates of the same synthetic residents, in the column layouts of the real published
files, so area-level analyses (apportioning practice prevalence to LSOAs, LSOA elasticities, the
equity audit's population denominators) see data shaped like what they would use in production.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthetic.config import CONDITIONS
from synthetic.geography import Region
from synthetic.population import CENSUS_AGE_BANDS, QOF_YEAR_END, age_band
from synthetic.tables import write_delimited

# QOF register: (group code, description, patient list type, minimum age)
QOF_GROUPS: dict[str, tuple[str, str, str, int]] = {
    "depression": ("DEP", "Depression", "18OV", 18),
    "smi": ("MH", "Mental health", "TOTAL", 0),
    "epilepsy": ("EP", "Epilepsy", "18OV", 18),
    "copd": ("COPD", "Chronic obstructive pulmonary disease", "TOTAL", 0),
    "diabetes": ("DM", "Diabetes mellitus", "17OV", 17),
    "chd": ("CHD", "Coronary heart disease", "TOTAL", 0),
    "hypertension": ("HYP", "Hypertension", "TOTAL", 0),
    "learning_disability": ("LD", "Learning disability", "TOTAL", 0),
    "osteoporosis": ("OST", "Osteoporosis: secondary prevention of fragility fractures", "50OV", 50),
    "asthma": ("AST", "Asthma", "6OV", 6),
}
CENSUS_STATUS_LABELS = {
    "employed": "Economically active: In employment",
    "unemployed": "Economically active: Unemployed",
    "inactive_sick": "Economically inactive: Long-term sick or disabled",
    "inactive_other": "Economically inactive: Other",
}
#: the by-group table also gives the reason for inactivity (census 2021 categories), so the equity
#: audit can leave retired people and students out of its comparison population
CENSUS_GROUP_STATUS_LABELS = {
    "employed": CENSUS_STATUS_LABELS["employed"],
    "unemployed": CENSUS_STATUS_LABELS["unemployed"],
    "inactive_sick": CENSUS_STATUS_LABELS["inactive_sick"],
    "inactive_retired": "Economically inactive: Retired",
    "inactive_student": "Economically inactive: Student",
    "inactive_home": "Economically inactive: Looking after home or family",
    "inactive_other": CENSUS_STATUS_LABELS["inactive_other"],
}
_REASON_STATUS = {
    "retired": "inactive_retired",
    "student": "inactive_student",
    "looking_after_home": "inactive_home",
}
#: census 2021 disability (2 categories), as in TS038 and the ONS custom-dataset tables
CENSUS_DISABILITY_LABELS = ("Not disabled under the Equality Act", "Disabled under the Equality Act")
TS066_PREFIX = "Economic activity status: "
TS066_COLUMNS = (
    "date",
    "geography",
    "geography code",
    TS066_PREFIX + "Total: All usual residents aged 16 years and over",
    TS066_PREFIX + "Economically active: In employment",
    TS066_PREFIX + "Economically active: Unemployed",
    TS066_PREFIX + "Economically inactive",
    TS066_PREFIX + "Economically inactive: Long-term sick or disabled",
    TS066_PREFIX + "Economically inactive: Other",
)


def write_reference(
    folder: Path, region: Region, persons: pd.DataFrame, diagnosis: dict[str, np.ndarray]
) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    lsoas = region.lsoas
    paths["lsoa_lookup"] = write_delimited(
        lsoas[["lsoa21cd", "lsoa21nm", "lad22cd", "lad22nm", "imd_decile"]], folder / "lsoa_lookup.csv"
    )
    # ONS "LSOA (2021) to Electoral Ward (2022) to LAD (2022)" lookup, in its published column names
    wards = lsoas[["lsoa21cd", "lsoa21nm", "wd22cd", "wd22nm", "lad22cd", "lad22nm"]]
    paths["lsoa_ward_lookup"] = write_delimited(
        wards.set_axis(["LSOA21CD", "LSOA21NM", "WD22CD", "WD22NM", "LAD22CD", "LAD22NM"], axis=1),
        folder / "lsoa_ward_lookup.csv",
    )
    pcs = region.postcodes
    # ONS pcd7: outward code padded to four characters, then the inward code (seven in all)
    pcd7 = [p.split(" ")[0].ljust(4)[: max(4, len(p.split(" ")[0]))] + p.split(" ")[1] for p in pcs["pcds"]]
    paths["postcode_lookup"] = write_delimited(
        pd.DataFrame(
            {
                "pcd7": pcd7,
                "pcds": pcs["pcds"],
                "dointr": pcs["dointr"],
                "doterm": pcs["doterm"],
                "lsoa21cd": pcs["lsoa21cd"],
                "lad22cd": pcs["lad22cd"],
            }
        ),
        folder / "postcode_lookup.csv",
    )

    # census 2021 (every resident aged 16+ on census day, registered with a GP or not)
    adult = persons["economic_status"].to_numpy() != "under_16"
    status = persons["economic_status"].to_numpy()
    lsoa_idx = persons["lsoa_idx"].to_numpy()
    n_lsoa = len(lsoas)
    counts = {
        s: np.bincount(lsoa_idx, weights=(status == s), minlength=n_lsoa).astype(np.int64)
        for s in CENSUS_STATUS_LABELS
    }
    total = np.bincount(lsoa_idx, weights=adult, minlength=n_lsoa).astype(np.int64)
    census = pd.DataFrame(
        {
            "date": 2021,
            "geography": lsoas["lsoa21nm"],
            "geography code": lsoas["lsoa21cd"],
            TS066_COLUMNS[3]: total,
            TS066_COLUMNS[4]: counts["employed"],
            TS066_COLUMNS[5]: counts["unemployed"],
            TS066_COLUMNS[6]: counts["inactive_sick"] + counts["inactive_other"],
            TS066_COLUMNS[7]: counts["inactive_sick"],
            TS066_COLUMNS[8]: counts["inactive_other"],
        },
        columns=list(TS066_COLUMNS),
    )
    paths["census_economic_activity"] = write_delimited(census, folder / "census_economic_activity.csv")

    # cross-tabulate on integer codes (fast at millions of rows), label only the non-empty cells
    bands = age_band(persons["age_at_census"].to_numpy(), CENSUS_AGE_BANDS)
    band_labels = np.array(CENSUS_AGE_BANDS, dtype=object)
    eth_labels = np.array(sorted(set(persons["ethnicity"].unique())), dtype=object)
    status_keys = list(CENSUS_GROUP_STATUS_LABELS)
    group_status = status.copy()
    reason = persons["inactive_reason"].to_numpy()
    for why, key in _REASON_STATUS.items():
        group_status[reason == why] = key
    codes = [
        lsoa_idx[adult],
        np.searchsorted(band_labels, bands[adult]),
        (persons["sex"].to_numpy()[adult] == "M").astype(np.int64),
        np.searchsorted(eth_labels, persons["ethnicity"].to_numpy()[adult]),
        persons["census_disabled"].to_numpy()[adult].astype(np.int64),
        pd.Categorical(group_status[adult], categories=status_keys).codes.astype(np.int64),
    ]
    sizes = [n_lsoa, len(band_labels), 2, len(eth_labels), 2, len(status_keys)]
    key = np.zeros(int(adult.sum()), dtype=np.int64)
    for c, size in zip(codes, sizes, strict=True):
        key = key * size + c
    cells, cell_counts = np.unique(key, return_counts=True)
    parts = []
    for size in reversed(sizes):
        parts.append(cells % size)
        cells = cells // size
    lsoa_c, band_c, sex_c, eth_c, disabled_c, status_c = reversed(parts)
    grouped = pd.DataFrame(
        {
            "lsoa21cd": lsoas["lsoa21cd"].to_numpy()[lsoa_c],
            "lad22cd": lsoas["lad22cd"].to_numpy()[lsoa_c],
            "age_band": band_labels[band_c],
            "sex": np.array(["Female", "Male"], dtype=object)[sex_c],
            "ethnicity": eth_labels[eth_c],
            "disability": np.array(CENSUS_DISABILITY_LABELS, dtype=object)[disabled_c],
            "economic_activity": np.array([CENSUS_GROUP_STATUS_LABELS[k] for k in status_keys], dtype=object)[
                status_c
            ],
            "count": cell_counts.astype(np.int64),
        }
    )
    paths["census_economic_activity_by_group"] = write_delimited(
        grouped, folder / "census_economic_activity_by_group.csv"
    )

    # registered population at the QOF year end (2023-03-31)
    reg_start = persons["registration_start"].to_numpy().astype("datetime64[D]")
    reg_end = persons["registration_end"].to_numpy().astype("datetime64[D]")
    on_list = (
        persons["registered"].to_numpy()
        & (reg_start <= QOF_YEAR_END)
        & (np.isnat(reg_end) | (reg_end > QOF_YEAR_END))
    )
    dob = persons["date_of_birth"].to_numpy().astype("datetime64[D]")
    age_qof = ((QOF_YEAR_END - dob).astype(np.int64) // 365.25).astype(np.int64)
    practice = persons["practice_idx"].to_numpy()
    n_prac = len(region.practices)
    qof_rows = []
    for c in CONDITIONS:
        code, description, list_type, min_age = QOF_GROUPS[c]
        in_group = on_list & (age_qof >= min_age)
        register = in_group & persons[f"has_{c}"].to_numpy() & (diagnosis[c] <= QOF_YEAR_END)
        reg_n = np.bincount(practice, weights=register, minlength=n_prac).astype(np.int64)
        list_n = np.bincount(practice, weights=in_group, minlength=n_prac).astype(np.int64)
        qof_rows.append(
            pd.DataFrame(
                {
                    "FINANCIAL_YEAR": "2022-23",
                    "PRACTICE_CODE": region.practices["practice_code"],
                    "PRACTICE_NAME": region.practices["practice_name"],
                    "GROUP_CODE": code,
                    "GROUP_DESCRIPTION": description,
                    "REGISTER": reg_n,
                    "PATIENT_LIST_TYPE": list_type,
                    "PRACTICE_LIST_SIZE": list_n,
                }
            )
        )
    qof = pd.concat(qof_rows, ignore_index=True).sort_values(["PRACTICE_CODE", "GROUP_CODE"], kind="stable")
    paths["qof_prevalence"] = write_delimited(qof, folder / "qof_prevalence.csv")

    key = practice[on_list].astype(np.int64) * n_lsoa + lsoa_idx[on_list]
    uniq, n_pat = np.unique(key, return_counts=True)
    regs = pd.DataFrame(
        {
            "PUBLICATION": "Patients Registered at a GP Practice",
            "EXTRACT_DATE": "01APR2023",
            "PRACTICE_CODE": region.practices["practice_code"].to_numpy()[uniq // n_lsoa],
            "PRACTICE_NAME": region.practices["practice_name"].to_numpy()[uniq // n_lsoa],
            "LSOA_CODE": lsoas["lsoa21cd"].to_numpy()[uniq % n_lsoa],
            "SEX": "ALL",
            "NUMBER_OF_PATIENTS": n_pat.astype(np.int64),
        }
    )
    paths["gp_registrations_lsoa"] = write_delimited(regs, folder / "gp_registrations_lsoa.csv")
    return paths
