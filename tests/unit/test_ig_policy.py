"""Policy schema: the demo and template are valid; every kind of mistake names the file and key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest
import yaml

from ig_policies.demo import DELETE, DEMO_POLICY, write_demo_policy
from ig_policies.errors import ConfigError
from ig_policies.policy import Analysis, DatasetKind, Role, load_policy
from ig_policies.review import Direction, describe_policy, diff_policies, format_diff

TEMPLATE = DEMO_POLICY.parent.parent / "template.yaml"

CANONICAL_EMPLOYMENT_FIELDS = {
    "client_ref", "forename", "surname", "date_of_birth", "sex", "postcode", "nhs_number", "ethnicity",
    "enrolment_date", "local_authority", "job_start", "job_start_date", "sustained_26_weeks",
    *(f"sr_{c}" for c in ("depression", "smi", "epilepsy", "copd", "diabetes", "chd", "hypertension",
                          "learning_disability", "osteoporosis", "asthma")),
}  # fmt: skip


def test_demo_policy_is_complete() -> None:
    policy = load_policy(DEMO_POLICY)
    assert policy.project.id == "ehl-lcr-demo"
    assert (policy.validity.start, policy.validity.expiry) == (dt.date(2026, 1, 1), dt.date(2028, 12, 31))
    assert policy.retention.linked_data_delete_by == dt.date(2029, 6, 30)
    assert policy.users_in_role(Role.DATA_PROCESSOR) == ("demo-processor",)
    assert policy.users_in_role(Role.RESEARCHER) == ("demo-researcher",)
    assert policy.users_in_role(Role.IG_OFFICER) == ("demo-ig-officer",)
    assert set(policy.datasets) == {
        "ways_to_work", "health_into_work", "health_demographics", "health_conditions", "health_activity",
    }  # fmt: skip
    for name in ("ways_to_work", "health_into_work"):
        assert policy.datasets[name].kind == DatasetKind.EMPLOYMENT_SUPPORT
        assert set(policy.datasets[name].fields) == CANONICAL_EMPLOYMENT_FIELDS
    assert set(policy.datasets["health_demographics"].fields) == {
        "patient_id", "nhs_number", "forename", "surname", "date_of_birth", "sex", "ethnicity", "postcode",
        "practice_code", "lsoa21cd", "registration_start", "registration_end", "date_of_death",
    }  # fmt: skip
    assert set(policy.datasets["health_conditions"].fields) == {"patient_id", "condition", "diagnosis_date"}
    assert set(policy.datasets["health_activity"].fields) == {"patient_id", "month", "measure", "count"}
    assert set(policy.analyses) == set(Analysis)
    out = policy.outputs
    assert (out.min_cell_count, out.rounding_base, out.dominance.n, out.dominance.k) == (10, 5, 2, 0.9)
    assert (out.p_percent, out.min_residual_df, out.zeros_disclosive) == (0.10, 10, True)
    assert policy.linkage.match_threshold == 0.9 and policy.linkage.clerical_review_band == (0.5, 0.9)
    assert (
        policy.national_data_opt_out.applies
        and policy.national_data_opt_out.list_file == "landing/health/opt_out.csv"
    )
    assert set(policy.resolve_datasets("employment_support")) == {"ways_to_work", "health_into_work"}
    assert policy.resolve_datasets("telephone_survey") == {}


def test_template_is_a_valid_policy() -> None:
    assert load_policy(TEMPLATE).project.id == "my-project-id"


def test_policy_models_are_frozen() -> None:
    policy = load_policy(DEMO_POLICY)
    with pytest.raises(pydantic.ValidationError):
        policy.outputs.min_cell_count = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"outputs.min_cel_count": 3}, "outputs.min_cel_count", "unknown key"),
        ({"outputs.min_cell_count": 0}, "outputs.min_cell_count", "greater than or equal to 1"),
        ({"users": [{"name": "x", "role": "superuser"}]}, "users[0].role", "data_processor"),
        ({"analyses": ["mind_reading"]}, "analyses[0]", "natural_experiment"),
        ({"validity.expiry": dt.date(2025, 1, 1)}, "validity", "expiry must not be before start"),
        ({"datasets.health_activity.direct_identifiers": ["nhs_number"]}, "datasets.health_activity", "not in fields: nhs_number"),
        ({"national_data_opt_out.list_file": DELETE}, "national_data_opt_out", "list_file is required"),
        ({"linkage.clerical_review_band": [0.5, 0.95]}, "linkage", "at or below match_threshold"),
        ({"linkage.clerical_review_band": [0.8, 0.5]}, "linkage.clerical_review_band", "low <= high"),
        ({"project.legal_basis": DELETE}, "project.legal_basis", "missing (this key is required)"),
        ({"datasets.health_activity.fields": ["patient_id", "Month Name"]}, "datasets.health_activity.fields", "lower_snake_case"),
        ({"datasets.health_conditions.kind": "gossip"}, "datasets.health_conditions.kind", "employment_support"),
    ],
)  # fmt: skip
def test_invalid_policy_errors_name_file_and_key(tmp_path: Path, changes: dict, key: str, words: str) -> None:
    path = write_demo_policy(tmp_path / "bad.yaml", changes, sign=False)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message
    assert f"  - {key}: " in message
    assert words in message
    assert "What to do" in message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("policy_version: 1\nproject:\n  id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_policy(path)


def test_repeated_key_is_refused(tmp_path: Path) -> None:
    """Plain YAML would silently keep the second value, so the reviewer could approve the wrong one."""
    path = tmp_path / "twice.yaml"
    path.write_text(
        DEMO_POLICY.read_text().replace(
            "  min_cell_count: 10\n", "  min_cell_count: 10\n  min_cell_count: 3\n"
        )
    )
    with pytest.raises(ConfigError, match="'min_cell_count' is given twice"):
        load_policy(path)


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


def test_describe_says_who_may_do_what_until_when() -> None:
    text = describe_policy(load_policy(DEMO_POLICY), today=dt.date(2027, 1, 1))
    assert "from 1 January 2026 to 31 December 2028" in text
    assert "demo-researcher" in text and "IG officer" in text
    assert "30 June 2029" in text
    assert "counts below 10 are suppressed" in text
    assert "ways_to_work (employment support), 23 fields" in text
    expired = describe_policy(load_policy(DEMO_POLICY), today=dt.date(2029, 1, 1))
    assert "EXPIRED" in expired


def test_diff_of_identical_policies_is_empty() -> None:
    policy = load_policy(DEMO_POLICY)
    assert diff_policies(policy, policy) == []
    assert "exactly the same" in format_diff([])


def test_diff_classifies_widening_and_narrowing(tmp_path: Path) -> None:
    old = load_policy(DEMO_POLICY)
    fields = [*old.datasets["ways_to_work"].fields, "telephone"]
    users = [u.model_dump(mode="json") for u in old.users] + [{"name": "new-analyst", "role": "researcher"}]
    new_path = write_demo_policy(
        tmp_path / "new.yaml",
        {
            "datasets.ways_to_work.fields": fields,
            "datasets.health_activity": DELETE,
            "users": users,
            "outputs.min_cell_count": 5,
            "outputs.rounding_base": 10,
            "outputs.dominance.k": 0.95,
            "outputs.zeros_disclosive": False,
            "retention.linked_data_delete_by": dt.date(2030, 6, 30),
            "validity.expiry": dt.date(2028, 6, 30),
            "linkage.match_threshold": 0.95,
            "linkage.key_version": 2,
            "analyses": ["equity_audit", "area_profile"],
            "national_data_opt_out.applies": False,
            "datasets.health_demographics.quasi_identifiers": [
                "sex",
                "ethnicity",
                "practice_code",
                "lsoa21cd",
            ],
        },
        sign=False,
    )
    changes = {(c.key, c.direction): c.text for c in diff_policies(old, load_policy(new_path))}
    assert changes[("datasets.ways_to_work.fields", Direction.WIDENS)] == "new fields: telephone"
    assert changes[("datasets", Direction.NARROWS)] == "removed datasets: health_activity"
    assert changes[("users", Direction.WIDENS)] == "new users: new-analyst as researcher"
    assert changes[("outputs.min_cell_count", Direction.WIDENS)] == "minimum cell count 10 -> 5"
    assert ("outputs.rounding_base", Direction.NARROWS) in changes
    assert ("outputs.dominance.k", Direction.WIDENS) in changes
    assert ("outputs.zeros_disclosive", Direction.WIDENS) in changes
    assert changes[("retention.linked_data_delete_by", Direction.WIDENS)].endswith("2029-06-30 -> 2030-06-30")
    assert ("validity.expiry", Direction.NARROWS) in changes
    assert ("linkage.match_threshold", Direction.NARROWS) in changes
    assert ("linkage.key_version", Direction.CHANGES) in changes
    assert (
        "removed analyses: natural_experiment, success_factors, concordance"
        in changes[("analyses", Direction.NARROWS)]
    )
    assert ("national_data_opt_out.applies", Direction.WIDENS) in changes
    assert changes[("datasets.health_demographics.quasi_identifiers", Direction.WIDENS)] == (
        "removed quasi-identifiers: date_of_death"
    )
    text = format_diff(diff_policies(old, load_policy(new_path)))
    assert text.splitlines()[1].startswith("[WIDENS]")  # widenings first: they need the closest look


def test_demo_variant_keeps_comments_out_of_values(tmp_path: Path) -> None:
    """write_demo_policy round-trips: no change -> same values as the demo."""
    path = write_demo_policy(tmp_path / "same.yaml", sign=False)
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(DEMO_POLICY.read_text())
