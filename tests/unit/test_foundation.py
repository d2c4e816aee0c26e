"""The workspace, atomic writes, content hashes, settings and master-secret handling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.settings import SettingsError, load_settings
from ig_policies.master_secret import (
    MasterSecretError,
    create_master_key_file,
    load_master_secret,
)
from ig_policies.workspace import ZONES, Workspace, atomic_directory, atomic_path, content_hash, write_parquet


def test_workspace_creates_every_zone(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    for rel in ZONES.values():
        assert (ws.root / rel).is_dir()
    assert ws.released == ws.root / "outputs" / "released"


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "table"
    with atomic_directory(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0").write_text("old")
    with atomic_directory(target) as tmp:
        tmp.mkdir()
        (tmp / "part-1").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["part-1"]
    assert [p.name for p in tmp_path.iterdir()] == ["table"]


def test_content_hash_is_stable_and_ignores_markers(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3]})
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    for d in (d1, d2):
        d.mkdir()
        write_parquet(df, d / "part-0.parquet")
    (d2 / "_SUCCESS").write_text("")
    assert content_hash(d1) == content_hash(d2)
    write_parquet(pd.DataFrame({"a": [1, 2, 4]}), d2 / "part-0.parquet")
    assert content_hash(d1) != content_hash(d2)


def test_settings_error_names_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "settings.yaml"
    f.write_text("linkage:\n  backend: fastest\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(f)
    assert str(f) in str(exc.value) and "linkage.backend" in str(exc.value)


def test_master_secret_fails_closed_without_configuration() -> None:
    with pytest.raises(MasterSecretError, match="No master secret"):
        load_master_secret({})


def test_master_key_file_round_trip_and_wrong_passphrase(tmp_path: Path) -> None:
    path = create_master_key_file(tmp_path / "master.key", "correct horse")
    secret = load_master_secret(
        {"EHL_MASTER_KEY_FILE": str(path), "EHL_MASTER_KEY_PASSPHRASE": "correct horse"}
    )
    assert "redacted" in repr(secret)
    with pytest.raises(MasterSecretError, match="wrong passphrase"):
        load_master_secret({"EHL_MASTER_KEY_FILE": str(path), "EHL_MASTER_KEY_PASSPHRASE": "wrong horse!"})


def test_derived_keys_differ_by_purpose_project_and_version() -> None:
    secret = load_master_secret({"EHL_MASTER_SECRET": "ab" * 32})
    base = secret.derive("match-tokens", "p1", 1)
    assert base == secret.derive("match-tokens", "p1", 1)
    assert (
        len(
            {
                base,
                secret.derive("match-tokens", "p2", 1),
                secret.derive("match-tokens", "p1", 2),
                secret.derive("audit", "p1", 1),
            }
        )
        == 4
    )


def test_master_key_passphrase_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    path = create_master_key_file(tmp_path / "master.key", "mounted secret")
    (tmp_path / "pass").write_text("mounted secret\n")
    env = {"EHL_MASTER_KEY_FILE": str(path), "EHL_MASTER_KEY_PASSPHRASE_FILE": str(tmp_path / "pass")}
    assert load_master_secret(env).derive("audit") == load_master_secret(
        {"EHL_MASTER_KEY_FILE": str(path), "EHL_MASTER_KEY_PASSPHRASE": "mounted secret"}
    ).derive("audit")
