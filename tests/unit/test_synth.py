"""The synthetic city region: reproducible, in the documented layouts, with the planted truth."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ig_policies.errors import ConfigError
from ig_policies.workspace import Workspace
from synthetic import SynthConfig, generate_region, load_config, nhs_number
from synthetic.config import CONDITIONS, MEASURES
from synthetic.employment import DEFECTS, ERROR_FLAGS, HIW_COLUMNS, WTW_COLUMNS

PEOPLE = 8_000


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.open(tmp_path_factory.mktemp("synth") / "ws")
    generate_region(ws, PEOPLE, seed=11)
    return ws


@pytest.fixture(scope="module")
def many_clients(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Many enrolments and four times the default error rates, so realised rates can be checked."""
    cfg = SynthConfig().with_error_scale(4.0)
    cfg = cfg.model_copy(update={"selection": cfg.selection.model_copy(update={"rate": 0.45})})
    ws = Workspace.open(tmp_path_factory.mktemp("synth-errors") / "ws")
    generate_region(ws, PEOPLE, seed=5, config=cfg)
    return ws


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(region: Workspace, tmp_path: Path):
    again = Workspace.open(tmp_path / "again")
    generate_region(again, PEOPLE, seed=11)
    first, second = _hashes(region.root), _hashes(again.root)
    assert first == second
    assert "landing/health/activity.parquet" in first and "truth/planted.json" in first

    other = Workspace.open(tmp_path / "other")
    generate_region(other, PEOPLE, seed=12)
    different = _hashes(other.root)
    assert different["landing/health/demographics.parquet"] != first["landing/health/demographics.parquet"]


def test_provider_extracts_have_exact_headers_encodings_and_formats(region: Workspace):
    wtw_path = region.landing / "employment" / "ways_to_work.csv"
    hiw_path = region.landing / "employment" / "health_into_work.csv"
    with open(wtw_path, encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh)) == list(WTW_COLUMNS)
    raw = hiw_path.read_bytes()
    raw.decode("cp1252")  # must be valid cp1252
    with open(hiw_path, encoding="cp1252", newline="") as fh:
        assert next(csv.reader(fh, delimiter=";")) == list(HIW_COLUMNS)
    assert b"\r\n" in raw

    wtw = pd.read_csv(wtw_path, dtype=str, keep_default_na=False)
    hiw = pd.read_csv(hiw_path, sep=";", encoding="cp1252", dtype=str, keep_default_na=False)
    truth = pd.read_parquet(region.truth / "enrolments.parquet")
    clean = truth[truth["defect"].isna()]
    ok_w = wtw["Client Ref"].isin(clean.loc[clean.dataset == "ways_to_work", "client_ref"])
    ok_h = hiw["ParticipantID"].isin(clean.loc[clean.dataset == "health_into_work", "client_ref"])
    assert wtw.loc[ok_w, "DOB"].str.fullmatch(r"\d\d/\d\d/\d{4}").all()
    assert wtw.loc[ok_w, "Start Date"].str.fullmatch(r"\d\d/\d\d/202[123]").all()
    assert set(wtw.loc[ok_w, "Gender"]) == {"Male", "Female"}
    assert set(wtw["Ethnic Group"]) <= {"Asian", "Black", "Mixed", "White", "Other"}
    assert hiw.loc[ok_h, "DateOfBirth"].str.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d\d").all()
    assert hiw.loc[ok_h, "EnrolmentDate"].str.fullmatch(r"\d\d-[A-Z][a-z]{2}-2[123]").all()
    assert set(hiw.loc[ok_h, "Sex"]) == {"M", "F"}
    assert set(hiw["EthnicityCode"]) <= set("ABMWO")
    for col in ["Depression", "Job Start", "Sustained 26 Weeks"]:
        assert set(wtw[col]) <= {"Y", "N"}
    for col in ["HC_SMI", "Outcome_JobStart", "Outcome_Sustained26"]:
        assert set(hiw[col]) <= {"0", "1"}
    job = wtw["Job Start"] == "Y"
    assert (wtw.loc[job, "Job Start Date"] != "").all() and (wtw.loc[~job, "Job Start Date"] == "").all()
    # most records carry no NHS number
    assert 0.05 < (wtw["NHS Number"] != "").mean() < 0.3
    assert (wtw["Telephone"] != "").all() and (hiw["Address Line 1"] != "").all()


def test_health_files_follow_the_contract_and_nhs_numbers_are_valid(region: Workspace):
    demo = pd.read_parquet(region.landing / "health" / "demographics.parquet")
    assert list(demo.columns) == [
        "patient_id", "nhs_number", "forename", "surname", "date_of_birth", "sex", "ethnicity", "postcode",
        "practice_code", "lsoa21cd", "registration_start", "registration_end", "date_of_death",
    ]  # fmt: skip
    assert demo["patient_id"].is_unique and demo["patient_id"].str.fullmatch(r"PAT\d{8}").all()
    nhs = demo["nhs_number"].dropna().to_numpy(dtype=object)
    assert len(nhs) > 0.99 * len(demo) and pd.Series(nhs).is_unique
    assert nhs_number.is_valid(nhs).all()
    assert demo["postcode"].str.fullmatch(r"(L|CH|PR|WA)\d{1,2} \d[ABD-HJLNP-UW-Z]{2}").all()
    assert demo["practice_code"].str.fullmatch(r"N8\d{4}").all()
    assert demo["lsoa21cd"].str.fullmatch(r"E01\d{6}").all()
    assert set(demo["sex"]) == {"M", "F"}
    assert (
        demo["registration_end"].dropna() >= demo.loc[demo["registration_end"].notna(), "registration_start"]
    ).all()
    died = demo["date_of_death"].notna()
    assert (demo.loc[died, "registration_end"] == demo.loc[died, "date_of_death"]).all()

    cond = pd.read_parquet(region.landing / "health" / "conditions.parquet")
    assert list(cond.columns) == ["patient_id", "condition", "diagnosis_date"]
    assert set(cond["condition"]) == set(CONDITIONS)
    assert cond["patient_id"].isin(demo["patient_id"]).all()

    opt = pd.read_csv(region.landing / "health" / "opt_out.csv", dtype=str)
    assert list(opt.columns) == ["nhs_number"]
    assert 0.01 < len(opt) / len(demo) < 0.03 and opt["nhs_number"].isin(demo["nhs_number"]).all()

    lookup = pd.read_csv(region.reference / "postcode_lookup.csv", dtype=str, keep_default_na=False)
    assert demo["postcode"].isin(lookup["pcds"]).all()
    assert (lookup["doterm"] != "").any(), "old (terminated) postcodes must be in the lookup too"


def test_activity_lies_inside_registration_and_event_rates_are_plausible(region: Workspace):
    demo = pd.read_parquet(region.landing / "health" / "demographics.parquet")
    act = pd.read_parquet(region.landing / "health" / "activity.parquet")
    assert list(act.columns) == ["patient_id", "month", "measure", "count"]
    assert set(act["measure"]) == set(MEASURES) and (act["count"] > 0).all()
    months = pd.to_datetime(act["month"])
    assert (months.dt.day == 1).all() and months.min() >= pd.Timestamp("2019-01-01")
    assert months.max() <= pd.Timestamp("2025-12-01")
    m = act.merge(demo[["patient_id", "registration_start", "registration_end"]], on="patient_id", how="left")
    assert m["registration_start"].notna().all()
    start = pd.to_datetime(m["registration_start"]).dt.to_period("M").dt.to_timestamp()
    end = pd.to_datetime(m["registration_end"]).dt.to_period("M").dt.to_timestamp()
    assert not (months < start).any()
    assert not (months > end).any()

    person_years = len(demo) * 7
    per_year = act.groupby("measure")["count"].sum() / person_years
    assert 3.5 < per_year["gp_appointments"] < 8
    assert 0.2 < per_year["ae_attendances"] < 0.7
    assert 0.05 < per_year["emergency_admissions"] < 0.3
    assert 0.8 < per_year["outpatient_appointments"] < 2.5
    assert 0.5 < per_year["antidepressant_items"] < 3
    # winter is busier than August for GP appointments (seasonality is planted)
    gp = act[act["measure"] == "gp_appointments"]
    by_month = gp.groupby(pd.to_datetime(gp["month"]).dt.month)["count"].sum()
    assert by_month[1] > by_month[8] * 1.1


def test_planted_json_is_complete(region: Workspace):
    planted = json.loads((region.truth / "planted.json").read_text())
    for key in [
        "seed", "people", "config", "counts", "economic_activity", "selection", "self_report", "outcomes",
        "health_effect", "activity", "identifier_errors", "row_defects",
    ]:  # fmt: skip
        assert key in planted, key
    assert planted["seed"] == 11 and planted["people"] == PEOPLE
    assert planted["config"] == SynthConfig().model_dump(mode="json")
    assert planted["economic_activity"]["elasticities_inactive_sick"]["epilepsy"] == 0.6
    assert set(planted["economic_activity"]["la_effects"]) == {
        "E08000012", "E08000011", "E08000014", "E08000013", "E08000015", "E06000006",
    }  # fmt: skip
    assert planted["health_effect"]["relative_change"]["gp_appointments"] == -0.08
    assert planted["health_effect"]["log_rate_ratio"]["ae_attendances"] == pytest.approx(np.log(0.88))
    assert set(planted["identifier_errors"]["realised"]) == set(ERROR_FLAGS) | {"duplicate_enrolment"}
    assert set(planted["row_defects"]["realised_counts"]) == set(DEFECTS)
    assert set(planted["selection"]["odds_ratios"]) == {
        "age_band", "female", "ethnicity", "imd_quintile", "economic_status", "condition",
    }  # fmt: skip


def test_truth_links_every_record_to_one_person(region: Workspace):
    links = pd.read_parquet(region.truth / "record_links.parquet")
    persons = pd.read_parquet(region.truth / "persons.parquet")
    demo = pd.read_parquet(region.landing / "health" / "demographics.parquet")
    assert set(links.columns) >= {"dataset", "record_id", "person_id"}
    assert links["person_id"].isin(persons["person_id"]).all()
    health = links[links["dataset"] == "health_demographics"]
    assert set(health["record_id"]) == set(demo["patient_id"])
    for dataset, col, path, sep, enc in [
        ("ways_to_work", "Client Ref", "ways_to_work.csv", ",", "utf-8"),
        ("health_into_work", "ParticipantID", "health_into_work.csv", ";", "cp1252"),
    ]:
        raw = pd.read_csv(
            region.landing / "employment" / path, sep=sep, encoding=enc, dtype=str, keep_default_na=False
        )
        mine = links[links["dataset"] == dataset]
        assert mine["record_id"].is_unique
        assert mine["record_id"].isin(raw[col]).all()
    # same person, linked health record: true NHS number agrees
    merged = health.merge(persons[["person_id", "nhs_number"]], on="person_id").merge(
        demo[["patient_id", "nhs_number"]], left_on="record_id", right_on="patient_id", suffixes=("_true", "")
    )
    has = merged["nhs_number"].notna()
    assert (merged.loc[has, "nhs_number"] == merged.loc[has, "nhs_number_true"]).all()


def test_identifier_error_rates_are_near_configured_and_flags_are_true(many_clients: Workspace):
    planted = json.loads((many_clients.truth / "planted.json").read_text())
    configured = planted["identifier_errors"]["configured"]
    realised = planted["identifier_errors"]["realised"]
    for name, r in realised.items():
        n, rate = r["denominator"], configured[name]
        assert n > (20 if name == "accent_dropped" else 200), name
        sd = np.sqrt(rate * (1 - rate) / n)
        assert abs(r["rate"] - rate) < 4 * sd + 1e-9, (name, r, rate)

    truth = pd.read_parquet(many_clients.truth / "enrolments.parquet")
    persons = pd.read_parquet(many_clients.truth / "persons.parquet").set_index("person_id")
    true = persons.loc[truth["person_id"]].reset_index()
    typo = truth["forename_typo"] & ~truth["name_swap"]
    assert (truth.loc[typo, "rec_forename"] != true.loc[typo, "forename"]).all()
    untouched = ~truth[["forename_typo", "nickname", "name_swap", "accent_dropped"]].any(axis=1)
    assert (truth.loc[untouched, "rec_forename"] == true.loc[untouched, "forename"]).all()
    swap = truth["name_swap"] & ~truth["forename_typo"] & ~truth["surname_typo"] & ~truth["nickname"]
    assert (truth.loc[swap, "rec_forename"] == true.loc[swap, "surname"].map(lambda s: s)).mean() > 0.9
    old = truth["old_postcode"]
    assert (
        truth.loc[old, "rec_postcode"].str.upper().str.replace(" ", "")
        != true.loc[old, "postcode"].str.replace(" ", "")
    ).all()
    mistyped = truth["nhs_number_mistyped"]
    kinds = truth.loc[mistyped, "nhs_number_error_kind"]
    invalid = ~nhs_number.is_valid(truth.loc[mistyped, "rec_nhs_number"].to_numpy(dtype=object))
    assert invalid[(kinds != "other_persons_number").to_numpy()].all()
    assert (truth.loc[mistyped, "rec_nhs_number"] != true.loc[mistyped, "nhs_number"]).all()
    dup_people = truth.loc[truth["duplicate_enrolment"], "person_id"]
    assert (truth["person_id"].isin(dup_people).groupby(truth["person_id"]).sum() >= 0).all()
    assert truth.groupby("person_id").size().loc[dup_people].ge(2).all()


def test_row_defects_are_present_and_recognisable(many_clients: Workspace):
    truth = pd.read_parquet(many_clients.truth / "enrolments.parquet")
    wtw = pd.read_csv(
        many_clients.landing / "employment" / "ways_to_work.csv", dtype=str, keep_default_na=False
    )
    w = truth[truth["dataset"] == "ways_to_work"].set_index("source_row")
    rows = wtw.set_index(pd.RangeIndex(1, len(wtw) + 1))
    assert 0.002 < truth["defect"].notna().mean() < 0.01
    for src in w.index[w["defect"] == "missing_client_ref"]:
        assert rows.loc[src, "Client Ref"] == ""
    for src in w.index[w["defect"] == "unknown_sex_code"]:
        assert rows.loc[src, "Gender"] not in {"Male", "Female"}
    for src in w.index[w["defect"] == "duplicate_client_ref"]:
        assert (wtw["Client Ref"] == rows.loc[src, "Client Ref"]).sum() == 2
    for src in w.index[w["defect"] == "enrolment_date_out_of_window"]:
        assert not re.fullmatch(r"\d\d/\d\d/202[123]", rows.loc[src, "Start Date"])
    clean_refs = wtw.loc[(w["defect"].isna()).to_numpy(), "Client Ref"]
    assert (clean_refs != "").all()


def test_enrolment_selection_is_unequal_in_the_planted_directions(many_clients: Workspace):
    persons = pd.read_parquet(many_clients.truth / "persons.parquet")
    adults = persons[persons["age_at_census"].between(18, 60)].copy()
    adults["enrolled"] = adults["enrolments"] > 0
    by_decile = adults.groupby(adults["imd_decile"] <= 2)["enrolled"].mean()
    assert by_decile[True] > 1.3 * by_decile[False]
    by_status = adults.groupby("economic_status")["enrolled"].mean()
    assert by_status["unemployed"] > 2 * by_status["employed"]
    assert by_status["inactive_sick"] > 2 * by_status["employed"]
    by_sex = adults.groupby("sex")["enrolled"].mean()
    assert by_sex["M"] > by_sex["F"]

    truth = pd.read_parquet(many_clients.truth / "enrolments.parquet")
    # self-report agrees only partly with the GP record
    for c in ("depression", "hypertension"):
        gp, sr = truth[f"gp_{c}"], truth[f"sr_{c}"]
        assert 0.3 < (gp & sr).sum() / gp.sum() < 0.95
    assert 0.2 < truth["job_start"].mean() < 0.45


def test_planted_health_effect_starts_at_enrolment_with_no_pre_trend(tmp_path: Path):
    """Same seed with and without a large effect: identical draws, so only post-enrolment months of
    enrolled people may differ, and only downwards."""
    strong = SynthConfig().model_copy(
        update={
            "health_effect": SynthConfig().health_effect.model_copy(
                update={"relative_change": dict.fromkeys(MEASURES, 0.0) | {"gp_appointments": -0.5}}
            )
        }
    )
    with_effect = Workspace.open(tmp_path / "effect")
    without = Workspace.open(tmp_path / "null")
    generate_region(with_effect, 3_000, seed=3, config=strong)
    generate_region(without, 3_000, seed=3, config=SynthConfig().without_health_effect())
    key = ["patient_id", "month", "measure"]
    a = pd.read_parquet(with_effect.landing / "health" / "activity.parquet")
    b = pd.read_parquet(without.landing / "health" / "activity.parquet")
    m = a.merge(b, on=key, how="outer", suffixes=("_effect", "_null")).fillna(
        {"count_effect": 0, "count_null": 0}
    )
    persons = pd.read_parquet(without.truth / "persons.parquet").dropna(subset=["patient_id"])
    first = persons.set_index("patient_id")["first_enrolment_date"]
    m["enrolled_from"] = pd.to_datetime(m["patient_id"].map(first)).dt.to_period("M").dt.to_timestamp()
    post = pd.to_datetime(m["month"]) >= m["enrolled_from"]
    changed = m["count_effect"] != m["count_null"]
    assert changed.any()
    assert (post | ~changed).all(), "a difference before enrolment would be a pre-trend"
    assert (m.loc[changed, "measure"] == "gp_appointments").all()
    assert (m.loc[changed, "count_effect"] < m.loc[changed, "count_null"]).all()
    gp_post = m[post & (m["measure"] == "gp_appointments")]
    ratio = gp_post["count_effect"].sum() / gp_post["count_null"].sum()
    assert 0.4 < ratio < 0.6


def test_area_elasticities_are_recoverable(tmp_path: Path):
    """Regress log LSOA rates on log prevalences with LA fixed effects: the planted elasticities."""
    cfg = SynthConfig().model_copy(
        update={"geography": SynthConfig().geography.model_copy(update={"people_per_lsoa": 200})}
    )
    ws = Workspace.open(tmp_path / "areas")
    generate_region(ws, 24_000, seed=8, config=cfg)
    area = pd.read_parquet(ws.truth / "area_truth.parquet")
    planted = json.loads((ws.truth / "planted.json").read_text())["economic_activity"]
    names = ["epilepsy", "smi", "depression", "copd", "learning_disability", "diabetes"]
    x = np.column_stack(
        [np.log(area[f"prevalence_{c}"]) for c in names]
        + [(area["lad22cd"] == la).astype(float) for la in sorted(area["lad22cd"].unique())]
    )
    y = np.log((area["count_inactive_sick"] + 0.5) / (area["residents_16_plus"] + 1))
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    estimates = dict(zip(names, beta[: len(names)], strict=True))
    truth = planted["elasticities_inactive_sick"]
    assert len(area) >= 100
    assert abs(estimates["epilepsy"] - truth["epilepsy"]) < 0.25
    assert abs(estimates["smi"] - truth["smi"]) < 0.25
    assert abs(estimates["diabetes"] - 0.0) < 0.25
    assert estimates["epilepsy"] > estimates["diabetes"] + 0.2


def test_reference_files_have_published_layouts(region: Workspace):
    ref = region.reference
    lsoa = pd.read_csv(ref / "lsoa_lookup.csv", dtype=str)
    assert list(lsoa.columns) == ["lsoa21cd", "lsoa21nm", "lad22cd", "lad22nm", "imd_decile"]
    assert set(lsoa["lad22cd"]) == {
        "E08000012",
        "E08000011",
        "E08000014",
        "E08000013",
        "E08000015",
        "E06000006",
    }
    census = pd.read_csv(ref / "census_economic_activity.csv")
    sick = "Economic activity status: Economically inactive: Long-term sick or disabled"
    unemployed = "Economic activity status: Economically active: Unemployed"
    total = "Economic activity status: Total: All usual residents aged 16 years and over"
    assert {sick, unemployed, total, "geography code"} <= set(census.columns)
    group = pd.read_csv(ref / "census_economic_activity_by_group.csv")
    assert group["count"].sum() == census[total].sum()
    by_lsoa = group[group["economic_activity"] == "Economically inactive: Long-term sick or disabled"]
    by_lsoa = by_lsoa.groupby("lsoa21cd")["count"].sum()
    assert (
        by_lsoa.reindex(census["geography code"], fill_value=0).to_numpy() == census[sick].to_numpy()
    ).all()
    persons = pd.read_parquet(region.truth / "persons.parquet")
    young_black_women = persons[
        (persons["age_at_census"].between(16, 24))
        & (persons["sex"] == "F")
        & (persons["ethnicity"] == "Black")
    ]
    assert group.query("age_band == '16-24' and sex == 'Female' and ethnicity == 'Black'")[
        "count"
    ].sum() == len(young_black_women)
    assert set(group["age_band"]) == {"16-24", "25-34", "35-49", "50-64", "65+"}
    qof = pd.read_csv(ref / "qof_prevalence.csv")
    assert {"PRACTICE_CODE", "GROUP_CODE", "REGISTER", "PRACTICE_LIST_SIZE"} <= set(qof.columns)
    assert (qof["REGISTER"] <= qof["PRACTICE_LIST_SIZE"]).all()
    regs = pd.read_csv(ref / "gp_registrations_lsoa.csv")
    assert {"PRACTICE_CODE", "LSOA_CODE", "NUMBER_OF_PATIENTS"} <= set(regs.columns)
    total_list = qof[qof["GROUP_CODE"] == "CHD"]["PRACTICE_LIST_SIZE"].sum()
    assert regs["NUMBER_OF_PATIENTS"].sum() == total_list


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 50))
def test_generated_nhs_numbers_are_valid_and_single_digit_errors_are_caught(seed: int, n: int):
    rng = np.random.default_rng(seed)
    numbers = nhs_number.generate(rng, n)
    assert len(set(numbers)) == n and nhs_number.is_valid(numbers).all()
    wrong, kind = nhs_number.mistype(rng, numbers, numbers)
    assert (wrong != numbers).all()
    edited = kind != "other_persons_number"
    assert not nhs_number.is_valid(wrong[edited]).any()


def test_cli_generates_and_reports_where_files_went(tmp_path: Path):
    from flows.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["synth", "--people", "1500", "--seed", "2", "--workspace", str(tmp_path / "ws"), "--no-effect"]
    )
    assert result.exit_code == 0, result.output
    assert "Ground truth" in result.output and str(tmp_path / "ws") in result.output
    planted = json.loads((tmp_path / "ws" / "truth" / "planted.json").read_text())
    assert planted["health_effect"]["enabled"] is False
    assert all(v == 0.0 for v in planted["health_effect"]["relative_change"].values())

    bad = runner.invoke(app, ["synth", "--people", "5", "--workspace", str(tmp_path / "ws2")])
    assert bad.exit_code == 4
    assert "Traceback" not in bad.output


def test_config_errors_name_the_file_and_key(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text("identifier_errors:\n  nickname: 0.2\nhealth_effect:\n  enabled: false\n")
    cfg = load_config(good)
    assert cfg.identifier_errors.nickname == 0.2 and cfg.health_effect.enabled is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("identifier_errors:\n  nickname: 1.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "bad.yaml" in str(err.value) and "identifier_errors.nickname" in str(err.value)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("selection:\n  or_condition:\n    gout: 2.0\n")
    with pytest.raises(ConfigError, match="gout"):
        load_config(unknown)


def test_activity_file_does_not_depend_on_the_number_of_threads(tmp_path: Path):
    cfg = SynthConfig().model_copy(update={"chunk_people": 1000})
    digests = []
    for workers in (1, 2):
        ws = Workspace.open(tmp_path / f"w{workers}")
        generate_region(ws, 3_500, seed=9, config=cfg, workers=workers)
        digests.append(hashlib.sha256((ws.landing / "health" / "activity.parquet").read_bytes()).hexdigest())
        table = pd.read_parquet(ws.landing / "health" / "activity.parquet")
        assert table["patient_id"].is_monotonic_increasing
        assert not table.duplicated(["patient_id", "month", "measure"]).any()
    assert digests[0] == digests[1]


def test_census_disability_is_planted_recorded_and_tabulated(region: Workspace, tmp_path: Path):
    planted = json.loads((region.truth / "planted.json").read_text())
    model = planted["config"]["disability"]
    assert (
        model["or_condition"]["learning_disability"] > 1 and model["or_economic_status"]["inactive_sick"] > 1
    )
    persons = pd.read_parquet(region.truth / "persons.parquet")
    adults = persons[persons["economic_status"] != "under_16"]
    assert 0.15 < adults["census_disabled"].mean() < 0.35
    group = pd.read_csv(region.reference / "census_economic_activity_by_group.csv")
    assert set(group["disability"]) == {
        "Disabled under the Equality Act",
        "Not disabled under the Equality Act",
    }
    disabled = group.loc[group["disability"] == "Disabled under the Equality Act", "count"].sum()
    assert disabled == adults["census_disabled"].sum()
    bad = tmp_path / "bad.yaml"
    bad.write_text("disability:\n  or_condition:\n    gout: 2.0\n")
    with pytest.raises(ConfigError, match="disability.or_condition"):
        load_config(bad)
