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


def _compose_writer_command() -> tuple[list[str], list[str]]:
    service = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())["services"]["audit-writer"]
    mounts = [v.split(":")[1] for v in service["volumes"]] + [f"/run/secrets/{s}" for s in service["secrets"]]
    return list(service["entrypoint"]) + list(service.get("command") or []), mounts


def _kubernetes_writer_command() -> tuple[list[str], list[str]]:
    for doc in yaml.safe_load_all((INFRA / "kubernetes" / "prefect.yaml").read_text()):
        pod = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if container["name"] == "audit-writer":
                return list(container["command"]), [m["mountPath"] for m in container["volumeMounts"]]
    raise AssertionError("no audit-writer container in infra/kubernetes/prefect.yaml")


@pytest.mark.parametrize("manifest", ["compose", "kubernetes"])
def test_the_audit_writer_starts_from_each_manifests_own_command(manifest: str, tmp_path: Path) -> None:
    """The writer's command line in each manifest, run as it is written (each container mount put
    at a temporary folder; no container runtime here), starts the service, signs an appended entry
    that verifies with the public key alone, and keeps its anchor where the manifest says."""
    import os
    import signal
    import sys
    import time

    from ig_policies.audit import authentic, create_demo_audit, load_public_key
    from ig_policies.audit_writer import request
    from ig_policies.workspace import Workspace

    command, mounts = _compose_writer_command() if manifest == "compose" else _kubernetes_writer_command()
    assert command[:3] == ["ehl", "audit", "serve"], command
    assert os.path.isabs(command[0]) or command[0] == "ehl"

    def at(container_path: str) -> Path:
        """Where a container path lands here: under the temporary folder, mount by mount."""
        mount = max(
            (m for m in mounts if container_path.startswith(m.rstrip("/") + "/") or container_path == m),
            key=len,
        )
        return tmp_path / mount.strip("/").replace("/", "_") / container_path[len(mount) :].lstrip("/")

    # every path option of the command is inside one of the container's mounts
    args, options = command[3:], {}
    while args:
        head = args.pop(0)
        name, _, value = head.partition("=")
        options[name] = value or args.pop(0)
    assert {"--workspace", "--key", "--anchor", "--socket"} <= set(options), options
    workspace = Workspace.open(at(options["--workspace"]))
    key = at(options["--key"])
    made = create_demo_audit(tmp_path / "administrator")  # the administrator makes the pair
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(made.signing_key.read_bytes())
    key.chmod(0o600)
    socket_path, anchor = at(options["--socket"]), at(options["--anchor"])
    for folder in (socket_path.parent, anchor.parent):
        folder.mkdir(parents=True, exist_ok=True)

    local = [
        str(Path(sys.executable).with_name("ehl")), "audit", "serve", "--workspace", str(workspace.root),
        "--key", str(key), "--anchor", str(anchor), "--socket", str(socket_path),
    ]  # fmt: skip
    proc = subprocess.Popen(local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the writer did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
        assert oct(socket_path.stat().st_mode & 0o777) == oct(0o660)
        reply = request(
            socket_path, {"request": "append", "entry": {"action": "manifest_check", "decision": "allowed"}}
        )
        entry = reply["entry"]
        assert entry["seq"] == 1 and authentic(entry, load_public_key(made.public_key))
        assert anchor.exists()  # the signed anchor, where the manifest keeps the writer's state
        assert (workspace.audit / "audit.jsonl").read_text().count("\n") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert not socket_path.exists()  # it removes its socket when stopped
