"""Deployment files for tests: a real (non-demo) deployment, as a TRE administrator writes one.

A real deployment must be owned by root, so tests that need one skip with a clear reason when
they do not run as root (CI runs them as root).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from ig_policies.audit import create_demo_audit, demo_writer_directory
from ig_policies.deployment import Deployment, load_deployment
from ig_policies.gate_keys import create_demo_gate, demo_gate_directory
from ig_policies.workspace import Workspace, write_text


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a real deployment file must be owned by root: run the tests as root (CI does)")


def write_real_deployment(
    directory: Path,
    *,
    trust_store: Path,
    policy: Path,
    workspace: Path,
    groups: dict[str, str] | None = None,
) -> Path:
    """A root-owned, non-demo deployment pinning ``policy`` (by its current bytes), with the
    in-process audit writer the workspace's tests read the log with, and an in-process output gate."""
    require_root()
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "deployment_version": 1,
        "demo": False,
        "workspace": str(workspace.resolve()),
        "trust_store": str(trust_store.resolve()),
        "policy": {"path": str(policy.resolve()), "sha256": hashlib.sha256(policy.read_bytes()).hexdigest()},
        "groups": groups or {"data_processor": "root", "researcher": "root", "ig_officer": "root"},
        "audit": create_demo_audit(demo_writer_directory(Workspace(workspace.resolve()))).model_dump(
            mode="json", exclude_none=True
        ),
        "gate": create_demo_gate(demo_gate_directory(Workspace(workspace.resolve()))).model_dump(
            mode="json", exclude_none=True
        ),
    }
    path = write_text(directory / "deployment.yaml", yaml.safe_dump(doc, sort_keys=False))
    os.chmod(path, 0o644)
    return path


def real_deployment(directory: Path, **kwargs) -> Deployment:
    return load_deployment(write_real_deployment(directory, **kwargs))
