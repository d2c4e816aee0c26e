"""Every YAML configuration is read by ``ig_policies.config_file``: one error format for all of them.

Each loader is given the same five kinds of bad file; each must answer with its own error class, a
message that names the file, and the problem at its key path (or, for broken YAML, its line).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from analysis.success import SuccessConfig, load_success_config
from flows.settings import Settings, SettingsError, load_settings
from ig_policies.config_file import UNKNOWN_KEY, forbids_unknown_keys, key_path, read_config_file
from ig_policies.errors import ConfigError
from ig_policies.policy import Policy, load_policy
from ig_policies.signing import _TrustStoreFile, load_trust_store
from linkage.dataset_config import DatasetConfig, load_dataset_config
from linkage.identifiable.validation.data_docs import AssetManifest, load_manifest
from linkage.linkage_config import LinkageConfig, load_linkage_config
from synthetic.config import SynthConfig, load_config

LOADERS: dict[str, tuple[Callable[[Path], Any], type[Exception], type[BaseModel]]] = {
    "settings": (load_settings, SettingsError, Settings),
    "dataset config": (load_dataset_config, ConfigError, DatasetConfig),
    "linkage config": (load_linkage_config, ConfigError, LinkageConfig),
    "policy": (load_policy, ConfigError, Policy),
    "trust store": (load_trust_store, ConfigError, _TrustStoreFile),
    "synthetic config": (load_config, ConfigError, SynthConfig),
    "success config": (load_success_config, ConfigError, SuccessConfig),
    "Data Docs asset list": (load_manifest, ConfigError, AssetManifest),
}


def _refusal(loader: str, path: Path) -> str:
    load, error, _ = LOADERS[loader]
    with pytest.raises(error) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


@pytest.mark.parametrize("loader", LOADERS)
def test_unknown_key_is_refused_at_its_key_path(loader: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("not_a_key_of_any_config: 1\n")
    message = _refusal(loader, path)
    assert "is not valid\n" in message
    assert f"  - not_a_key_of_any_config: {UNKNOWN_KEY}" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_repeated_key_is_refused_with_its_key_path_and_lines(loader: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("outer:\n  inner: 1\n  inner: 2\n")
    message = _refusal(loader, path)
    assert "outer.inner: the key 'inner' is given twice (lines 2 and 3)" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_broken_yaml_names_line_and_column(loader: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("a: 1\nb: [unclosed\n")
    message = _refusal(loader, path)
    assert "not valid YAML at line 3, column 1" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_a_list_is_not_a_config(loader: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("- a\n- b\n")
    assert "must be a YAML mapping of keys to values, not a list" in _refusal(loader, path)


@pytest.mark.parametrize("loader", LOADERS)
def test_missing_file_says_so(loader: str, tmp_path: Path) -> None:
    message = _refusal(loader, tmp_path / "absent.yaml")
    assert "file does not exist" in message and "What to do:" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_every_model_inside_a_config_refuses_unknown_keys(loader: str) -> None:
    assert forbids_unknown_keys(LOADERS[loader][2]) == []


def test_forbids_unknown_keys_finds_a_lax_inner_model() -> None:
    class Lax(BaseModel):
        x: int = 0

    class Outer(BaseModel):
        model_config = {"extra": "forbid"}
        inner: dict[str, Lax] = {}

    assert forbids_unknown_keys(Outer) == [Lax.__qualname__]


def test_repeated_key_inside_a_list_item(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text("keys:\n  - key_id: a\n    key_id: b\n")
    with pytest.raises(ConfigError, match=r"keys\[0\]\.key_id: the key 'key_id' is given twice"):
        read_config_file(path, "the trust store")


def test_equal_text_with_different_types_is_not_a_repeat(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("1: integer\n'1': text\n")
    assert read_config_file(path, "the config") == {1: "integer", "1": "text"}


def test_anchors_and_aliases_are_read_once(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("a: &yes_no [Y, N]\nb: *yes_no\nc: &loop [1, *loop]\n")
    doc = read_config_file(path, "the config")
    assert doc["a"] == doc["b"] == ["Y", "N"] and doc["c"][1] is doc["c"]


def test_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("# only a comment\n")
    assert read_config_file(path, "the config") == {}
    assert load_success_config(path) == SuccessConfig()


def test_key_path_writes_list_positions_in_brackets() -> None:
    assert key_path(("keys", 0, "public_key")) == "keys[0].public_key"
    assert key_path(()) == "(top level)"
