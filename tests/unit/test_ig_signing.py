"""Signing: canonical form, detached signatures, trust store, and every way a signature can fail."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ig_policies.demo import (
    DEMO_OFFICER_KEY,
    DEMO_PASSPHRASE,
    DEMO_POLICY,
    DEMO_TRUST_STORE,
    write_demo_policy,
)
from ig_policies.errors import ConfigError, PolicyRefused
from ig_policies.signing import (
    add_trusted_key,
    canonical_bytes,
    create_officer_key,
    load_private_key,
    load_trust_store,
    policy_file_hash,
    resolve_trust_store,
    sign_policy,
    signature_path,
    verify_policy_signature,
)

PASS = "officer-passphrase-1"


@pytest.fixture
def officer(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh officer key pair and a trust store that trusts it: (private key, trust store)."""
    keys = create_officer_key(tmp_path / "jo.key.pem", tmp_path / "jo.pub.pem", PASS)
    store = tmp_path / "trust.yaml"
    add_trusted_key(store, keys.public_key, "jo-officer")
    return keys.private_key, store


@pytest.fixture
def signed(tmp_path: Path, officer: tuple[Path, Path]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(DEMO_POLICY.read_text())
    sign_policy(path, officer[0], PASS, signer="jo")
    return path


def _refusal(policy: Path, store: Path) -> str:
    with pytest.raises(PolicyRefused) as err:
        verify_policy_signature(policy, load_trust_store(store))
    return err.value.rule


def test_demo_policy_is_signed_by_the_demo_key() -> None:
    check = verify_policy_signature(DEMO_POLICY, load_trust_store(DEMO_TRUST_STORE))
    assert check.officer == "demo-ig-officer"
    assert check.policy_hash == policy_file_hash(DEMO_POLICY)
    for path in (
        DEMO_OFFICER_KEY,
        DEMO_TRUST_STORE,
        DEMO_OFFICER_KEY.with_name("DEMO_ONLY_officer_key.pub.pem"),
    ):
        assert "DEMO ONLY" in path.read_text()


def test_sign_and_verify(signed: Path, officer: tuple[Path, Path]) -> None:
    check = verify_policy_signature(signed, load_trust_store(officer[1]))
    assert check.officer == "jo-officer"
    record = json.loads(signature_path(signed).read_text())
    assert record["policy_sha256"] == check.policy_hash == policy_file_hash(signed)
    assert record["key_id"] == check.key_id


def test_signature_survives_reformatting(signed: Path, officer: tuple[Path, Path]) -> None:
    doc = yaml.safe_load(signed.read_text())
    keys = list(doc)
    random.Random(3).shuffle(keys)
    reordered = {k: doc[k] for k in reversed(keys)}
    text = "# a new comment\n\n" + yaml.safe_dump(reordered, default_flow_style=True, width=60, indent=4)
    text = text.replace("2026-01-01", "'2026-01-01'")  # quoting a date does not change its value
    signed.write_text(text)
    assert verify_policy_signature(signed, load_trust_store(officer[1])).officer == "jo-officer"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("min_cell_count: 10", "min_cell_count: 9"),
        ("{name: demo-researcher, role: researcher}", "{name: demo-researcher, role: ig_officer}"),
        ("expiry: 2028-12-31", "expiry: 2028-12-30"),
        ("p_percent: 0.10", "p_percent: 0.1000001"),
        ("min_cell_count: 10", "min_cell_count: 10.0"),
        ("      - sustained_26_weeks\n", "      - sustained_26_weeks\n      - telephone\n"),
    ],
)
def test_any_changed_value_breaks_the_signature(
    signed: Path, officer: tuple[Path, Path], old: str, new: str
) -> None:
    text = signed.read_text()
    assert old in text
    signed.write_text(text.replace(old, new, 1))
    assert _refusal(signed, officer[1]) == "edited_after_signing"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), width=st.integers(40, 200), flow=st.booleans())
def test_canonical_form_ignores_layout(seed: int, width: int, flow: bool) -> None:
    """Property: any re-serialisation of the same values has the same canonical bytes."""
    doc = yaml.safe_load(DEMO_POLICY.read_text())

    def shuffle(node):
        if isinstance(node, dict):
            items = list(node.items())
            random.Random(seed).shuffle(items)
            return {k: shuffle(v) for k, v in items}
        if isinstance(node, list):
            return [shuffle(v) for v in node]
        return node

    again = yaml.safe_load(
        yaml.safe_dump(shuffle(doc), default_flow_style=flow, width=width, sort_keys=False)
    )
    assert canonical_bytes(again) == canonical_bytes(doc)


def test_unsigned_policy_is_refused(tmp_path: Path, officer: tuple[Path, Path]) -> None:
    path = write_demo_policy(tmp_path / "p.yaml", sign=False)
    assert _refusal(path, officer[1]) == "unsigned"


def test_untrusted_key_is_refused(signed: Path) -> None:
    assert _refusal(signed, DEMO_TRUST_STORE) == "untrusted_key"


def test_forged_signature_is_refused(signed: Path, officer: tuple[Path, Path]) -> None:
    sig = signature_path(signed)
    record = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(record["signature"]))
    raw[5] ^= 0x01
    record["signature"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(record))
    assert _refusal(signed, officer[1]) == "bad_signature"


def test_edit_with_recomputed_hash_is_still_refused(signed: Path, officer: tuple[Path, Path]) -> None:
    """Editing the policy and updating the hash in the .sig does not help without the private key."""
    signed.write_text(signed.read_text().replace("min_cell_count: 10", "min_cell_count: 3"))
    sig = signature_path(signed)
    record = json.loads(sig.read_text())
    record["policy_sha256"] = policy_file_hash(signed)
    sig.write_text(json.dumps(record))
    assert _refusal(signed, officer[1]) == "bad_signature"


def test_garbage_signature_file_is_refused(signed: Path, officer: tuple[Path, Path]) -> None:
    signature_path(signed).write_text("not json")
    assert _refusal(signed, officer[1]) == "bad_signature"


def test_signature_by_another_trusted_key_claiming_to_be_the_first(
    signed: Path, officer: tuple[Path, Path], tmp_path: Path
) -> None:
    """A signature made with key B but labelled with key A's id fails verification."""
    other = create_officer_key(tmp_path / "b.key.pem", tmp_path / "b.pub.pem", PASS)
    good_id = json.loads(signature_path(signed).read_text())["key_id"]
    sign_policy(signed, other.private_key, PASS)
    record = json.loads(signature_path(signed).read_text())
    record["key_id"] = good_id
    signature_path(signed).write_text(json.dumps(record))
    assert _refusal(signed, officer[1]) == "bad_signature"


def test_invalid_policy_is_never_signed(tmp_path: Path, officer: tuple[Path, Path]) -> None:
    path = write_demo_policy(tmp_path / "bad.yaml", {"outputs.min_cell_count": -1}, sign=False)
    with pytest.raises(ConfigError, match="outputs.min_cell_count"):
        sign_policy(path, officer[0], PASS)
    assert not signature_path(path).exists()


def test_wrong_passphrase(officer: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_private_key(officer[0], "not-the-passphrase")
    assert load_private_key(DEMO_OFFICER_KEY, DEMO_PASSPHRASE) is not None


def test_private_key_is_encrypted_pkcs8(officer: tuple[Path, Path]) -> None:
    text = officer[0].read_text()
    assert "BEGIN ENCRYPTED PRIVATE KEY" in text
    assert officer[0].stat().st_mode & 0o077 == 0


def test_short_passphrase_and_overwrite_are_refused(tmp_path: Path, officer: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        create_officer_key(tmp_path / "x.pem", tmp_path / "x.pub", "short")
    with pytest.raises(ConfigError, match="already exists"):
        create_officer_key(officer[0], tmp_path / "y.pub", PASS)


def test_trust_store_rejects_mismatched_key_id(officer: tuple[Path, Path]) -> None:
    store = officer[1]
    doc = yaml.safe_load(store.read_text())
    doc["keys"][0]["key_id"] = "0123456789abcdef"
    store.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="does not match its public_key"):
        load_trust_store(store)


def test_no_trust_store_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EHL_TRUST_STORE", raising=False)
    with pytest.raises(PolicyRefused) as err:
        resolve_trust_store(None)
    assert err.value.rule == "no_trust_store"
    monkeypatch.setenv("EHL_TRUST_STORE", str(DEMO_TRUST_STORE))
    assert (
        resolve_trust_store(None).officer(next(iter(load_trust_store(DEMO_TRUST_STORE).keys)))
        == "demo-ig-officer"
    )
