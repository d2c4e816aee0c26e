"""One TRE on this machine, for the tests that try separation of duties for real.

It creates the OS accounts and groups it needs (``groupadd``/``useradd``; CI runs as root), a
root-owned deployment, a workspace whose zones belong to the roles that write them, and the audit
writer and the output gate each running as its own account. Its policy needs two officers'
reviews for every release (``outputs.reviews_required: 2``). Every command of a test then runs as one of those accounts
with ``runuser``. The interpreter's folders are made traversable by those accounts (``chmod o+x`` on
parent folders that lack it, put back afterwards), because the accounts must start the project's
Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESSOR, RESEARCHER, OFFICER_1, OFFICER_2, WRITER = "ehlproc", "ehlres", "ehlig1", "ehlig2", "ehlaudit"
#: the output gate's account: the one writer of outputs/pending/
GATE = "ehlgate"
GROUPS = {
    "data_processor": "ehl-processors",
    "researcher": "ehl-researchers",
    "ig_officer": "ehl-officers",
    "audit_writer": "ehl-audit",
}
#: everyone who may talk to the audit writer's socket
STAFF = "ehl-staff"
OFFICER_PASSPHRASE = "officer-passphrase-for-tests"


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def _ensure_group(name: str) -> None:
    _run("groupadd", "-f", name)


def _ensure_user(name: str, groups: list[str]) -> None:
    exists = subprocess.run(["id", "-u", name], capture_output=True).returncode == 0
    if not exists:
        _run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name)
    _run("usermod", "-a", "-G", ",".join(groups), name)


def _traversable(paths: list[Path]) -> list[tuple[Path, int]]:
    """Give 'others' search (x) permission on every parent of ``paths`` lacking it; returns what to restore."""
    changed: list[tuple[Path, int]] = []
    for path in paths:
        for parent in [path, *path.parents]:
            if not parent.is_dir():
                continue
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                changed.append((parent, stat.S_IMODE(mode)))
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    return changed


@dataclass
class Site:
    """One TRE on this machine: accounts, a root-owned deployment, a workspace and a running writer."""

    base: Path
    deployment: Path
    workspace: Path
    policy: Path
    trust_store: Path
    officer_keys: dict[str, Path]
    master_key: Path
    master_passphrase: Path

    def env(self, user: str, **extra: str) -> dict[str, str]:
        home = self.base / "home" / user
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "PREFECT_HOME": str(home / ".prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "EHL_DEPLOYMENT": str(self.deployment),
            "PYTHONPATH": str(ROOT),  # this checkout, whichever one the interpreter was installed from
            **extra,
        }

    def as_user(self, user: str, *cmd: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = self.env(user, **extra)
        full = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *cmd]
        return subprocess.run(full, capture_output=True, text=True, timeout=600, cwd=self.base)

    def ehl(self, user: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.as_user(user, str(Path(sys.executable).with_name("ehl")), *args, **extra)

    def python(self, user: str, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.as_user(user, sys.executable, "-c", code, **extra)

    def audit_entries(self) -> list[dict]:
        log = self.workspace / "audit" / "audit.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("creating OS accounts needs root: run the tests as root (CI does)")
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        pytest.skip("runuser and useradd are needed (Debian: util-linux and passwd)")
    from ig_policies.demo import DEMO_POLICY
    from ig_policies.master_secret import create_master_key_file
    from ig_policies.signing import add_trusted_key, create_officer_key, sign_policy
    from ig_policies.workspace import write_text

    for group in [*GROUPS.values(), STAFF]:
        _ensure_group(group)
    # every role reads the audit log (and its anchor) through the writer's group; none writes it
    readers = [STAFF, GROUPS["audit_writer"]]
    _ensure_user(PROCESSOR, [GROUPS["data_processor"], *readers])
    _ensure_user(RESEARCHER, [GROUPS["researcher"], *readers])
    _ensure_user(OFFICER_1, [GROUPS["ig_officer"], *readers])
    _ensure_user(OFFICER_2, [GROUPS["ig_officer"], *readers])
    _ensure_user(WRITER, [GROUPS["audit_writer"], STAFF])  # it gives its socket to the staff group
    # the gate audits through the writer and gives its own socket to the researchers' group
    _ensure_user(GATE, [*readers, GROUPS["researcher"]])

    # the administrator's umask: earlier commands in this process may have left the service's 027
    umask = os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="ehl-sod-", dir="/tmp"))
    base.chmod(0o755)
    restore = _traversable([Path(sys.executable).resolve(), Path(sys.executable), ROOT])
    try:
        for user in (PROCESSOR, RESEARCHER, OFFICER_1, OFFICER_2):
            home = base / "home" / user
            home.mkdir(parents=True)
            shutil.chown(home, user, user)
            home.chmod(0o700)

        etc = base / "etc"
        etc.mkdir(mode=0o755)
        # each officer's own key, readable only by them
        keys: dict[str, Path] = {}
        trust_store = etc / "trust_store.yaml"
        for officer in (OFFICER_1, OFFICER_2):
            folder = base / "home" / officer
            made = create_officer_key(folder / "officer.pem", folder / "officer.pub", OFFICER_PASSPHRASE)
            shutil.chown(folder / "officer.pem", officer, officer)
            add_trusted_key(trust_store, made.public_key, officer)
            keys[officer] = folder / "officer.pem"
        # the researcher has a key of their own too (anyone can make one)
        mine = create_officer_key(
            base / "home" / RESEARCHER / "mine.pem",
            base / "home" / RESEARCHER / "mine.pub",
            "researcher-pass",
        )
        for path in (mine.private_key, mine.public_key):
            shutil.chown(path, RESEARCHER, RESEARCHER)
        doc = yaml.safe_load(DEMO_POLICY.read_text())
        doc["outputs"]["reviews_required"] = 2  # two officers review every release
        doc["users"] = [
            {"name": PROCESSOR, "role": "data_processor"},
            {"name": RESEARCHER, "role": "researcher"},
            {"name": OFFICER_1, "role": "ig_officer"},
            {"name": OFFICER_2, "role": "ig_officer"},
        ]
        policy = write_text(etc / "policy.yaml", yaml.safe_dump(doc, sort_keys=False))
        sign_policy(policy, keys[OFFICER_1], OFFICER_PASSPHRASE, signer=OFFICER_1)
        for public in (policy, policy.with_name("policy.yaml.sig"), trust_store):
            public.chmod(0o644)  # root's, readable by every role, writable by none

        # the master secret: the data processor's alone
        secrets_dir = base / "processor-secrets"
        secrets_dir.mkdir(mode=0o700)
        master_passphrase = write_text(secrets_dir / "passphrase", "processor-master-passphrase\n")
        master_key = create_master_key_file(secrets_dir / "master.key", "processor-master-passphrase")
        for path in (secrets_dir, master_key, master_passphrase):
            shutil.chown(path, PROCESSOR, PROCESSOR)
        master_passphrase.chmod(0o600)

        workspace = base / "workspace"
        _prepare_workspace(workspace)
        audit = _start_audit_writer(base, workspace)
        gate = _output_gate_settings(base)
        deployment = write_text(
            etc / "deployment.yaml",
            yaml.safe_dump(
                {
                    "deployment_version": 1,
                    "demo": False,
                    "workspace": str(workspace),
                    "trust_store": str(trust_store),
                    "policy": {
                        "path": str(policy),
                        "sha256": hashlib.sha256(policy.read_bytes()).hexdigest(),
                    },
                    "groups": GROUPS,
                    "audit": audit,
                    "gate": gate,
                },
                sort_keys=False,
            ),
        )
        deployment.chmod(0o644)
        _start_output_gate(base, deployment, gate)
        yield Site(base, deployment, workspace, policy, trust_store, keys, master_key, master_passphrase)
    finally:
        _stop_audit_writer()
        shutil.rmtree(base, ignore_errors=True)
        # another site on this machine (a test run in parallel) still needs the interpreter's folders
        if not any(base.parent.glob("ehl-sod-*")):
            for path, mode in restore:
                path.chmod(mode)
        os.umask(umask)


_writer: list[subprocess.Popen] = []


def _start_audit_writer(base: Path, workspace: Path) -> dict[str, str]:
    """The audit writer, as its own account, on a socket only the staff group may use."""
    from ig_policies.audit import create_demo_audit

    state = base / "audit-writer"
    settings = create_demo_audit(state)  # a key pair and an anchor path, then handed to the writer
    run = base / "run"
    run.mkdir(mode=0o755)
    shutil.chown(run, WRITER, STAFF)
    for path in [state, *state.iterdir()]:
        shutil.chown(path, WRITER, GROUPS["audit_writer"])
    state.chmod(0o2750)  # the public key and the signed anchor: read by the writer's group
    (state / "public.pem").chmod(0o640)
    socket = run / "audit.sock"
    _start_service(
        WRITER, "the audit writer", socket, [],
        "audit", "serve", "--workspace", str(workspace), "--key", str(settings.signing_key),
        "--anchor", str(settings.anchor), "--socket", str(socket), "--group", STAFF,
    )  # fmt: skip
    return {"public_key": str(settings.public_key), "anchor": str(settings.anchor), "socket": str(socket)}


def _output_gate_settings(base: Path) -> dict[str, str]:
    """The gate's key pair (the private key its account's alone) and socket, for the deployment."""
    from ig_policies.gate_keys import create_demo_gate

    state = base / "output-gate"
    settings = create_demo_gate(state)
    for path in [state, *state.iterdir()]:
        shutil.chown(path, GATE, GATE)
    state.chmod(0o755)  # public.pem is read by every officer; signing.key stays 0600
    run = base / "run-gate"
    run.mkdir(mode=0o755)
    shutil.chown(run, GATE, GATE)
    return {
        "public_key": str(settings.public_key),
        "socket": str(run / "gate.sock"),
        "account": GATE,
    }


def _start_output_gate(base: Path, deployment: Path, gate: dict[str, str]) -> None:
    """The output gate, as its own account, on a socket only the researchers' group may use."""
    socket = Path(gate["socket"])
    key = base / "output-gate" / "signing.key"
    _start_service(
        GATE, "the output gate", socket, [f"EHL_DEPLOYMENT={deployment}", f"HOME={base}"],
        "gate", "serve", "--key", str(key), "--socket", str(socket), "--group", GROUPS["researcher"],
    )  # fmt: skip


def _start_service(account: str, what: str, socket: Path, env: list[str], *args: str) -> None:
    """Run ``ehl ARGS`` as ``account`` (a service: the audit writer, the output gate) and wait for its socket."""
    proc = subprocess.Popen(
        [
            "runuser", "-u", account, "--", "env", f"PYTHONPATH={ROOT}", *env,
            f"PATH={Path(sys.executable).parent}:/usr/bin:/bin", str(Path(sys.executable).with_name("ehl")), *args,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _writer.append(proc)
    deadline = time.monotonic() + 60
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start: " + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.2)


def _stop_audit_writer() -> None:
    for proc in _writer:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    _writer.clear()


def _prepare_workspace(workspace: Path) -> None:
    """The administrator creates the zones with their owners, groups and modes: each zone is
    owned by the account of the role that writes it (``ZONE_ACCESS``)."""
    from ig_policies.workspace import ZONE_ACCESS, Workspace, ZoneGroups, apply_zone_permissions

    ws = Workspace.open(workspace)
    owners = {
        "data_processor": PROCESSOR,
        "researcher": RESEARCHER,
        "ig_officer": OFFICER_1,
        "audit_writer": WRITER,
        "output_gate": GATE,
    }
    for zone, access in ZONE_ACCESS.items():
        shutil.chown(ws.zone(zone), owners[access.writer])
    apply_zone_permissions(ws, ZoneGroups(**GROUPS))


def place_region(site: Site, source: Path, zones: tuple[str, ...] = ("landing", "reference")) -> None:
    """Put a synthetic region's extracts (made elsewhere, by root) in the site's zones as a TRE's
    file transfer would: owned by the processor, with the zone's group, no more open than the zone."""
    from ig_policies.workspace import ZONES, seal_tree

    for zone in zones:
        target = site.workspace / ZONES[zone]
        group = target.stat().st_gid
        for item in sorted((source / ZONES[zone]).iterdir()):
            copied = target / item.name
            if item.is_dir():
                shutil.copytree(item, copied)
            else:
                shutil.copy2(item, copied)
            for path in [copied, *(copied.rglob("*") if copied.is_dir() else [])]:
                os.chown(path, pwd_uid(PROCESSOR), group)
            seal_tree(copied)


def pwd_uid(account: str) -> int:
    """The uid of an account of the site."""
    import pwd

    return pwd.getpwnam(account).pw_uid
