"""Small-area profiles: loaders of the published layouts, apportionment, planted elasticities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.area_data import (
    load_census_economic_activity,
    load_gp_registrations,
    load_lsoa_lookup,
    load_qof_prevalence,
)
from analysis.area_profile import apportion_prevalence, build_area_profile, fit_elasticities
from ig_policies.errors import InputError

CONDITIONS = ["depression", "diabetes", "copd"]
BASE = {"depression": 0.12, "diabetes": 0.07, "copd": 0.02}
PLANTED = {"depression": 0.6, "diabetes": 0.3, "copd": 0.0}
LA_EFFECT = {"E08000011": 0.0, "E08000012": 0.15, "E08000013": -0.1, "E08000014": 0.25}


def synthetic_areas(seed: int = 7, n_lsoa: int = 400, n_practice: int = 60):
    """Practices with varying prevalence, LSOAs registered with 1-3 practices, and census counts
    whose log rates follow planted elasticities in the apportioned prevalences."""
    rng = np.random.default_rng(seed)
    practices = [f"N8{i:04d}" for i in range(n_practice)]
    lsoas = [f"E01{i:06d}" for i in range(n_lsoa)]
    las = list(LA_EFFECT)
    qof = []
    for p in practices:
        for c in CONDITIONS:
            size = int(rng.integers(3000, 12000))
            qof.append((p, c, round(BASE[c] * np.exp(rng.normal(0, 0.35)) * size), size))
    qof = pd.DataFrame(qof, columns=["practice_code", "condition", "register", "list_size"])
    reg = []
    for lsoa in lsoas:
        k = int(rng.integers(1, 4))
        for p, share in zip(rng.choice(practices, k, replace=False), rng.dirichlet(np.ones(k)), strict=True):
            reg.append((p, lsoa, int(share * 1500) + 1))
    reg = pd.DataFrame(reg, columns=["practice_code", "lsoa21cd", "patients"])
    lookup = pd.DataFrame({"lsoa21cd": lsoas, "lad22cd": [las[i % len(las)] for i in range(n_lsoa)]})
    prev = apportion_prevalence(qof, reg).merge(lookup)
    residents = 1200
    log_sick = np.log(0.05) + prev["lad22cd"].map(LA_EFFECT)
    log_unemp = np.log(0.06) + 0.0 * prev["lad22cd"].map(LA_EFFECT)
    for c in CONDITIONS:
        log_sick = log_sick + PLANTED[c] * np.log(prev[c] / BASE[c])
        log_unemp = log_unemp + 0.5 * PLANTED[c] * np.log(prev[c] / BASE[c])
    active = rng.binomial(residents, 0.6, len(prev))
    census = pd.DataFrame(
        {
            "lsoa21cd": prev["lsoa21cd"],
            "residents_16_plus": residents,
            "economically_active": active,
            "unemployed": rng.binomial(residents, np.exp(log_unemp)),
            "inactive": residents - active,
            "inactive_sick": rng.binomial(residents, np.exp(log_sick)),
        }
    )
    return qof, reg, census, lookup


def test_apportionment_weights_practice_prevalence_by_registered_patients():
    qof = pd.DataFrame(
        {
            "practice_code": ["A", "B", "A", "B"],
            "condition": ["depression", "depression", "asthma", "asthma"],
            "register": [100, 300, 50, 0],
            "list_size": [1000, 1000, 1000, 1000],
        }
    )
    reg = pd.DataFrame(
        {
            "practice_code": ["A", "B", "A", "C"],
            "lsoa21cd": ["E01000001", "E01000001", "E01000002", "E01000002"],
            "patients": [30, 10, 50, 50],
        }
    )
    out = apportion_prevalence(qof, reg).set_index("lsoa21cd")
    # LSOA 1: 3/4 of residents at A (10%), 1/4 at B (30%) -> 15%
    assert out.loc["E01000001", "depression"] == pytest.approx(0.15)
    assert out.loc["E01000001", "asthma"] == pytest.approx(0.75 * 0.05)
    # LSOA 2: practice C is not in QOF, so its patients do not drag prevalence to zero
    assert out.loc["E01000002", "depression"] == pytest.approx(0.10)
    assert out.loc["E01000002", "registered_patients"] == 100


def test_recovers_planted_elasticities_with_la_fixed_effects():
    qof, reg, census, lookup = synthetic_areas()
    profile = build_area_profile(census, apportion_prevalence(qof, reg), lookup)
    model = fit_elasticities(profile, "inactive_sick_rate", CONDITIONS)
    table = model.elasticities.set_index("condition")
    for c, truth in PLANTED.items():
        est, se = table.loc[c, "elasticity"], table.loc[c, "std_error"]
        assert abs(est - truth) < 3.5 * se, (c, est, truth, se)
    assert model.significant_conditions() == ["depression", "diabetes"]
    assert model.fit["local_authorities"] == 4 and model.fit["lsoas"] == 400
    assert any("1% higher prevalence of depression" in s for s in model.sentences)

    unemp = fit_elasticities(profile, "unemployment_rate", CONDITIONS).elasticities.set_index("condition")
    assert abs(unemp.loc["depression", "elasticity"] - 0.3) < 3.5 * unemp.loc["depression", "std_error"]


def test_without_fixed_effects_the_la_confounding_would_not_be_absorbed():
    """A check that the test above can fail: plant a prevalence-LA correlation and drop the LAs."""
    qof, reg, census, lookup = synthetic_areas(seed=11)
    profile = build_area_profile(census, apportion_prevalence(qof, reg), lookup)
    one_la = profile.assign(lad22cd="E08000011")
    # shift the rate by LA in a way correlated with depression prevalence
    high_dep = profile["depression"] > profile["depression"].median()
    one_la["inactive_sick_rate"] = profile["inactive_sick_rate"] * np.where(high_dep, 1.5, 1.0)
    fe = profile.assign(
        lad22cd=np.where(high_dep, "LA_HIGH", "LA_LOW"), inactive_sick_rate=one_la["inactive_sick_rate"]
    )
    biased = fit_elasticities(one_la, "inactive_sick_rate", CONDITIONS).elasticities.set_index("condition")
    adjusted = fit_elasticities(fe, "inactive_sick_rate", CONDITIONS).elasticities.set_index("condition")
    assert biased.loc["depression", "elasticity"] > 0.6 + 3 * biased.loc["depression", "std_error"]
    assert abs(adjusted.loc["depression", "elasticity"] - 0.6) < 4 * adjusted.loc["depression", "std_error"]


# --------------------------------------------------------------------------------------------
# Loaders: the published layouts


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_census_ts066_wide_nomis_layout(tmp_path: Path):
    header = [
        "date",
        "geography",
        "geography code",
        "Economic activity status: Total: All usual residents aged 16 years and over",
        "Economic activity status: Economically active (excluding full-time students)",
        "Economic activity status: Economically active (excluding full-time students):In employment",
        "Economic activity status: Economically active (excluding full-time students): Unemployed",
        "Economic activity status: Economically active and a full-time student",
        "Economic activity status: Economically active and a full-time student: Unemployed",
        "Economic activity status: Economically inactive",
        "Economic activity status: Economically inactive: Long-term sick or disabled",
    ]
    rows = ["2021,Liverpool 001A,E01006512,1500,900,850,50,40,10,560,120"]
    path = _write(tmp_path / "ts066.csv", ",".join(f'"{h}"' for h in header) + "\n" + "\n".join(rows) + "\n")
    out = load_census_economic_activity(path)
    r = out.iloc[0]
    assert r["lsoa21cd"] == "E01006512"
    assert (r["residents_16_plus"], r["economically_active"], r["unemployed"]) == (1500, 940, 60)
    assert (r["inactive"], r["inactive_sick"]) == (560, 120)


def test_census_ts066_long_custom_dataset_layout(tmp_path: Path):
    text = (
        "Lower layer Super Output Areas Code,Lower layer Super Output Areas,"
        "Economic activity status (20 categories) Code,Economic activity status (20 categories),Observation\n"
        "E01006512,Liverpool 001A,-8,Does not apply,300\n"
        "E01006512,Liverpool 001A,1,Economically active (excluding full-time students): In employment: Employee: Part-time,400\n"
        "E01006512,Liverpool 001A,7,Economically active (excluding full-time students): Unemployed: Seeking work or waiting to start a job already obtained: Available to start working within 2 weeks,50\n"
        "E01006512,Liverpool 001A,14,Economically active and a full-time student: Unemployed: Seeking work or waiting to start a job already obtained: Available to start working within 2 weeks,5\n"
        "E01006512,Liverpool 001A,18,Economically inactive: Long-term sick or disabled,70\n"
        "E01006512,Liverpool 001A,19,Economically inactive: Other,30\n"
    )
    out = load_census_economic_activity(_write(tmp_path / "custom.csv", text)).iloc[0]
    assert (out["residents_16_plus"], out["economically_active"], out["unemployed"]) == (555, 455, 55)
    assert (out["inactive"], out["inactive_sick"]) == (100, 70)


def test_qof_prevalence_published_layout(tmp_path: Path):
    text = (
        "PRACTICE_CODE,GROUP_CODE,REGISTER,PATIENT_LIST_TYPE,PRACTICE_LIST_SIZE\n"
        "N82001,DEP,812,18OV,6001\n"
        "N82001,HYP,1003,TOTAL,7500\n"
        "N82001,CAN,99,TOTAL,7500\n"
    )
    out = load_qof_prevalence(_write(tmp_path / "PREVALENCE_2223.csv", text)).set_index("condition")
    assert set(out.index) == {"depression", "hypertension"}  # CAN is not a project condition
    assert out.loc["depression", "list_size"] == 6001


def test_gp_registrations_published_layout_drops_non_lsoas_and_double_counts(tmp_path: Path):
    text = (
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n"
        "GP_LSOA,01APR2024,N82001,SURGERY,E01006512,ALL,120\n"
        "GP_LSOA,01APR2024,N82001,SURGERY,E01006512,MALE,60\n"
        "GP_LSOA,01APR2024,N82001,SURGERY,NO2011,ALL,3\n"
        'GP_LSOA,01APR2024,N82002,OTHER,E01006513,ALL,"1,204"\n'
    )
    out = load_gp_registrations(_write(tmp_path / "gp-reg-pat-prac-lsoa-all.csv", text))
    assert out.to_dict("records") == [
        {"practice_code": "N82001", "lsoa21cd": "E01006512", "patients": 120},
        {"practice_code": "N82002", "lsoa21cd": "E01006513", "patients": 1204},
    ]


def test_loader_errors_name_the_file_and_column(tmp_path: Path):
    path = _write(tmp_path / "qof.csv", "PRACTICE_CODE,GROUP_CODE,REGISTER\nN82001,DEP,5\n")
    with pytest.raises(InputError) as err:
        load_qof_prevalence(path)
    assert "qof.csv" in str(err.value) and "list size" in str(err.value)
    bad = _write(tmp_path / "reg.csv", "PRACTICE_CODE,LSOA_CODE,NUMBER_OF_PATIENTS\nN1,E01006512,lots\n")
    with pytest.raises(InputError) as err:
        load_gp_registrations(bad)
    assert "row 2" in str(err.value) and "NUMBER_OF_PATIENTS" in str(err.value)
    with pytest.raises(InputError, match="does not exist"):
        load_lsoa_lookup(tmp_path / "missing.csv")


def test_lsoa_lookup(tmp_path: Path):
    text = "lsoa21cd,lsoa21nm,lad22cd,lad22nm,imd_decile\nE01006512,Liverpool 001A,E08000012,Liverpool,1\n"
    out = load_lsoa_lookup(_write(tmp_path / "lsoa_lookup.csv", text))
    assert out.iloc[0].to_dict() == {
        "lsoa21cd": "E01006512",
        "lad22cd": "E08000012",
        "lad22nm": "Liverpool",
        "imd_decile": 1,
    }


# --------------------------------------------------------------------------------------------
# The stage and its command, on files in the published layouts


def _write_reference(workspace, seed: int = 7) -> None:
    """The synthetic areas above, written as TS066 / QOF / GP-registration / lookup files."""
    qof, reg, census, lookup = synthetic_areas(seed)
    ts066 = pd.DataFrame(
        {
            "date": 2021,
            "geography": census["lsoa21cd"],
            "geography code": census["lsoa21cd"],
            "Economic activity status: Total: All usual residents aged 16 years and over": census[
                "residents_16_plus"
            ],
            "Economic activity status: Economically active: Unemployed": census["unemployed"],
            "Economic activity status: Economically inactive": census["inactive"],
            "Economic activity status: Economically inactive: Long-term sick or disabled": census[
                "inactive_sick"
            ],
        }
    )
    ts066.to_csv(workspace.reference / "census_economic_activity.csv", index=False)
    codes = {"depression": "DEP", "diabetes": "DM", "copd": "COPD"}
    pd.DataFrame(
        {
            "PRACTICE_CODE": qof["practice_code"],
            "GROUP_CODE": qof["condition"].map(codes),
            "REGISTER": qof["register"],
            "PATIENT_LIST_TYPE": "TOTAL",
            "PRACTICE_LIST_SIZE": qof["list_size"],
        }
    ).to_csv(workspace.reference / "qof_prevalence.csv", index=False)
    pd.DataFrame(
        {
            "PUBLICATION": "x",
            "EXTRACT_DATE": "01APR2023",
            "PRACTICE_CODE": reg["practice_code"],
            "PRACTICE_NAME": "P",
            "LSOA_CODE": reg["lsoa21cd"],
            "SEX": "ALL",
            "NUMBER_OF_PATIENTS": reg["patients"],
        }
    ).to_csv(workspace.reference / "gp_registrations_lsoa.csv", index=False)
    lookup.assign(lsoa21nm="n", lad22nm="la", imd_decile=1).to_csv(
        workspace.reference / "lsoa_lookup.csv", index=False
    )


@pytest.mark.usefixtures("master_secret_env")
def test_stage_and_command_request_elasticities_for_review(workspace, monkeypatch):
    from typer.testing import CliRunner

    from analysis.area_profile import run_area_profile
    from flows.cli import app
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE, DEMO_USERS, demo_engine, write_demo_policy

    _write_reference(workspace)
    result = run_area_profile(workspace, demo_engine(workspace), DEMO_USERS["researcher"])
    assert [s for _, _, s in result.requests] == ["pending"] * 4
    table = pd.read_csv(result.pending[0] / "preview" / "area-profile-inactive-sick-rate.csv").set_index(
        "term"
    )
    for c, truth in PLANTED.items():
        assert abs(table.loc[c, "estimate"] - truth) < 3.5 * table.loc[c, "std_error"]
    assert (result.pending[1] / "preview" / "area-profile-inactive-sick-rate-chart.png").exists()
    assert any("significant conditions: depression, diabetes" in s for s in result.sentences)
    entry = [e for e in AuditLog.for_workspace(workspace).entries() if e["action"] == "area_profile"][-1]
    assert entry["decision"] == "allowed" and entry["analysis"] == "area_profile"

    monkeypatch.setenv("EHL_TRUST_STORE", str(DEMO_TRUST_STORE))
    args = ["analyse", "area-profile", "--workspace", str(workspace.root), "--policy", str(DEMO_POLICY)]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "A 1% higher prevalence of depression" in ok.output and "outputs/pending/" in ok.output
    no_researcher = write_demo_policy(
        workspace.root.parent / "no-researcher.yaml",
        {"users": [{"name": DEMO_USERS["data_processor"], "role": "data_processor"}]},
    )
    refused = CliRunner().invoke(app, [*args[:-1], str(no_researcher)])
    assert (
        refused.exit_code == 3 and "user_not_in_role" in refused.output and "Traceback" not in refused.output
    )
    (workspace.reference / "qof_prevalence.csv").unlink()
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 4 and "qof_prevalence.csv" in missing.output


# --------------------------------------------------------------------------------------------
# Too few LSOAs: "not estimable here, because ...", and the stage returns normally


@pytest.mark.usefixtures("master_secret_env")
def test_too_few_lsoas_records_not_estimable_and_the_stage_returns(workspace):
    from analysis.area_profile import run_area_profile
    from analysis.disclosure import load_output
    from ig_policies.audit import AuditLog
    from ig_policies.demo import DEMO_USERS, demo_engine

    _write_reference(workspace)
    census = workspace.reference / "census_economic_activity.csv"
    pd.read_csv(census).head(12).to_csv(census, index=False)  # 12 LSOAs for 3 conditions and 4 LAs
    result = run_area_profile(workspace, demo_engine(workspace), DEMO_USERS["researcher"])
    assert [name for name, _, _ in result.requests] == ["area-profile-not-estimable"]
    assert [status for _, _, status in result.requests] == ["pending"]  # passes its checks
    note = pd.read_csv(result.pending[0] / "preview" / "area-profile-not-estimable.csv")
    assert list(note["part"]) == [
        "the model of the rate of economic inactivity through long-term sickness or disability",
        "the model of the unemployment rate",
    ]
    assert note["reason"].str.startswith("not estimable here, because only 12 LSOAs").all()
    assert "needs data covering more LSOAs" in note["reason"].iloc[0]
    assert load_output(result.pending[0] / "output").description.count("not estimable here, because") == 2
    assert all("not estimable here, because" in s for s in result.sentences)
    entry = [e for e in AuditLog.for_workspace(workspace).entries() if e["action"] == "area_profile"][-1]
    assert entry["decision"] == "allowed"


def test_fit_raises_not_estimable_when_conditions_and_las_cannot_be_told_apart():
    from analysis.stage import NotEstimable

    qof, reg, census, lookup = synthetic_areas(n_lsoa=24)
    profile = build_area_profile(census, apportion_prevalence(qof, reg), lookup)
    # one LA per 2 LSOAs: 12 LA effects and 3 conditions leave 9 residual degrees of freedom
    profile["lad22cd"] = [f"E0800{i // 2:04d}" for i in range(len(profile))]
    with pytest.raises(NotEstimable) as caught:
        fit_elasticities(profile, "inactive_sick_rate", CONDITIONS)
    assert caught.value.sentence.startswith(
        "The model of the rate of economic inactivity through long-term sickness or disability: "
        "not estimable here, because the 3 conditions' prevalences and the local authorities cannot be told apart in 24 LSOAs"
    )


def test_absorbed_fixed_effects_give_statsmodels_hc3_numbers_exactly():
    import statsmodels.formula.api as smf

    qof, reg, census, lookup = synthetic_areas(n_lsoa=300)
    profile = build_area_profile(census, apportion_prevalence(qof, reg), lookup)
    fast = fit_elasticities(profile, "inactive_sick_rate", CONDITIONS)
    data = pd.DataFrame({"y": np.log(profile["inactive_sick_rate"]), "la": profile["lad22cd"]})
    for i, c in enumerate(CONDITIONS):
        data[f"x{i}"] = np.log(profile[c])
    ref = smf.ols("y ~ x0 + x1 + x2 + C(la)", data=data).fit(cov_type="HC3")
    got = fast.elasticities.set_index("condition")
    for i, c in enumerate(CONDITIONS):
        assert got.loc[c, "elasticity"] == pytest.approx(ref.params[f"x{i}"], rel=1e-9)
        assert got.loc[c, "std_error"] == pytest.approx(ref.bse[f"x{i}"], rel=1e-9)
        assert got.loc[c, "p_value"] == pytest.approx(ref.pvalues[f"x{i}"], rel=1e-6, abs=1e-300)
        assert got.loc[c, "ci_low"] == pytest.approx(ref.conf_int().loc[f"x{i}", 0], rel=1e-9)
    assert fast.fit["residual_df"] == ref.df_resid
    assert fast.fit["r_squared"] == pytest.approx(ref.rsquared, rel=1e-9)
    assert fast.fit["adj_r_squared"] == pytest.approx(ref.rsquared_adj, rel=1e-9)
