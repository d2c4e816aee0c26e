"""The deployment manifests parse, pin their images, keep traffic inside, and point at real flows."""

from __future__ import annotations

import importlib
import inspect
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def _images(doc: object) -> list[str]:
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "image" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_images(value))
    elif isinstance(doc, list):
        for item in doc:
            found.extend(_images(item))
    return found


def test_compose_has_the_tre_services_on_an_internal_network() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "prefect-worker", "spark-master", "spark-worker"} <= set(services)
    assert compose["networks"]["tre"]["internal"] is True
    for name, service in services.items():
        assert service.get("networks") == ["tre"], name
    assert services["prefect-worker"]["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_only_the_audit_writer_holds_the_audit_signing_key() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    holders = [n for n, s in services.items() if "ehl_audit_signing_key" in (s.get("secrets") or [])]
    assert holders == ["audit-writer"]
    assert services["audit-writer"]["user"].split(":")[0] != "10001"  # not the flows' account
    assert "serve" in services["audit-writer"]["entrypoint"]
    assert "audit-socket:/run/ehl-audit" in services["prefect-worker"]["volumes"]


def test_only_the_output_gate_holds_the_gate_signing_key_and_runs_apart() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    holders = [n for n, s in services.items() if "ehl_gate_signing_key" in (s.get("secrets") or [])]
    assert holders == ["output-gate"]
    users = {services[n]["user"].split(":")[0] for n in ("output-gate", "audit-writer")}
    assert len(users) == 2 and "10001" not in users  # neither the flows' account nor the writer's
    assert services["output-gate"]["entrypoint"][:3] == ["ehl", "gate", "serve"]
    assert "gate-socket:/run/ehl-gate" in services["prefect-worker"]["volumes"]
    pod = next(
        d
        for d in yaml.safe_load_all((INFRA / "kubernetes" / "prefect.yaml").read_text())
        if d and d["kind"] == "Deployment" and "output-gate" in str(d)
    )
    [gate] = [c for c in pod["spec"]["template"]["spec"]["containers"] if c["name"] == "output-gate"]
    assert gate["command"][:3] == ["ehl", "gate", "serve"] and gate["securityContext"]["runAsUser"] == 10003


@pytest.mark.parametrize("manifest", sorted((INFRA / "kubernetes").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifests_parse_and_pin_images(manifest: Path) -> None:
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    assert docs, manifest
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), manifest
        assert doc["metadata"].get("namespace", "ehl-linkage") == "ehl-linkage"
    for image in _images(docs):
        assert ":" in image and not image.endswith(":latest"), image


def test_kubernetes_denies_egress_outside_the_namespace() -> None:
    docs = list(yaml.safe_load_all((INFRA / "kubernetes" / "namespace.yaml").read_text()))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Egress"]
    for rule in policy["spec"]["egress"]:
        assert all("ipBlock" not in peer for peer in rule["to"])  # no route to outside addresses


def test_prefect_deployments_point_at_real_flows_with_real_parameters() -> None:
    from prefect import Flow

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, func = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert isinstance(flow, Flow), deployment["name"]
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
        assert deployment["work_pool"]["name"] == "ehl-process-pool"


def test_image_installs_the_locked_dependencies() -> None:
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert "--no-deps -r requirements.lock" in dockerfile
    assert "openjdk-17" in dockerfile


@pytest.mark.parametrize("script", sorted((INFRA / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_start_scripts_are_valid_bash(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
