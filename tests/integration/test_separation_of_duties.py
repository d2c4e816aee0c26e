"""Separation of duties, tried for real: OS accounts and groups, a root-owned deployment, the
audit writer under its own account, and each attack of the separation-of-duties issue re-run as
the researcher who tried it.

The site (``os_site.py``) creates the accounts and groups it needs (``groupadd``/``useradd``; CI runs as root) and
runs every command as one of them with ``runuser``. It makes the interpreter's folders traversable
by those accounts (``chmod o+x`` on parent folders that lack it, put back afterwards), because
the accounts must be able to start the project's Python.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.os_site import (
    GATE,
    OFFICER_1,
    OFFICER_2,
    OFFICER_PASSPHRASE,
    PROCESSOR,
    RESEARCHER,
    Site,
)

pytestmark = pytest.mark.integration


def _request_as_researcher(site: Site) -> str:
    """The researcher requests a small table as their own account: it goes to the output gate."""
    code = (
        "import pandas as pd\n"
        "from analysis.disclosure.outputs import FrequencyTable\n"
        "from analysis.disclosure.workflow import request_output\n"
        "from flows.stages import PipelineContext\n"
        "from ig_policies.policy import Role\n"
        "from ig_policies.workspace import Workspace\n"
        f"ws = Workspace.open({str(site.workspace)!r}, create=False)\n"
        "ctx = PipelineContext(ws, None)\n"
        "me = ctx.acting(Role.RESEARCHER)\n"
        "df = pd.DataFrame({'age_band': ['16-24', '25-49', '50-64'], 'count': [30, 300, 200]})\n"
        "table = FrequencyTable(df, ('age_band',), 'analysis/clients', 'Clients by age band', population='all clients')\n"
        "print(request_output(ws, ctx.engine(actor=me), me, table, 'age', 'board report'))\n"
    )
    done = site.python(RESEARCHER, code)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def requested(site: Site) -> str:
    """One request made through the gate, shared by the tests (each OS-account command costs seconds)."""
    return _request_as_researcher(site)


def _researchers_key(site: Site) -> list[str]:
    return ["--key", str(site.base / "home" / RESEARCHER / "mine.pem")]


def test_the_actor_is_the_account_and_typed_names_are_gone(site: Site, requested: str) -> None:
    rid = requested
    request = next(e for e in reversed(site.audit_entries()) if e["action"] == "output_request")
    assert request["actor"] == RESEARCHER and request["account"] == GATE and "mode" not in request

    # 1. the researcher "releases" by typing the officer's name: there is no such option
    typed = site.ehl(RESEARCHER, "outputs", "release", rid, "--user", OFFICER_1)
    assert typed.returncode == 2 and "--user" in typed.stderr + typed.stdout
    # ... and as themselves they are refused, named by rule, and the refusal is audited
    own = site.ehl(
        RESEARCHER,
        "outputs",
        "release",
        rid,
        *_researchers_key(site),
        EHL_OFFICER_KEY_PASSPHRASE="researcher-pass",
    )
    assert own.returncode == 3, own.stdout + own.stderr
    assert "user_not_in_role" in own.stderr
    refusal = site.audit_entries()[-1]
    assert (refusal["action"], refusal["decision"], refusal["account"]) == (
        "output_release",
        "refused",
        RESEARCHER,
    )
    assert not any((site.workspace / "outputs" / "released").iterdir())


def test_a_trust_store_or_policy_of_ones_own_is_refused(site: Site, requested: str) -> None:
    from ig_policies.demo import DEMO_POLICY

    rid = requested
    home = site.base / "home" / RESEARCHER
    code = (
        "from pathlib import Path\n"
        "import yaml\n"
        "from ig_policies.signing import add_trusted_key, create_officer_key, sign_policy\n"
        f"home = Path({str(home)!r})\n"
        f"add_trusted_key(home / 'own.yaml', home / 'mine.pub', {OFFICER_1!r})\n"
        f"doc = yaml.safe_load(Path({str(DEMO_POLICY)!r}).read_text())\n"
        "doc['outputs']['min_cell_count'] = 1\n"
        f"doc['users'] = [{{'name': {RESEARCHER!r}, 'role': 'ig_officer'}}, {{'name': {RESEARCHER!r}, 'role': 'researcher'}}]\n"
        "(home / 'lax.yaml').write_text(yaml.safe_dump(doc))\n"
        f"sign_policy(home / 'lax.yaml', home / 'mine.pem', 'researcher-pass', signer={OFFICER_1!r})\n"
    )
    made = site.python(RESEARCHER, code)
    assert made.returncode == 0, made.stderr
    key = {"EHL_OFFICER_KEY": str(home / "mine.pem"), "EHL_OFFICER_KEY_PASSPHRASE": "researcher-pass"}
    tried = site.ehl(
        RESEARCHER,
        "outputs",
        "release",
        rid,
        "--trust-store",
        str(home / "own.yaml"),
        "--policy",
        str(home / "lax.yaml"),
        **key,
    )
    assert tried.returncode == 3 and "trust_store_not_deployed" in tried.stderr, tried.stderr
    tried = site.ehl(RESEARCHER, "outputs", "release", rid, "--policy", str(home / "lax.yaml"), **key)
    assert tried.returncode == 3 and "policy_not_deployed" in tried.stderr, tried.stderr
    # a deployment file of one's own is refused too (not root's)
    own_deployment = home / "deployment.yaml"
    own_deployment.write_text(
        site.deployment.read_text().replace(str(site.trust_store), str(home / "own.yaml"))
    )
    shutil.chown(own_deployment, RESEARCHER, RESEARCHER)
    tried = site.ehl(RESEARCHER, "outputs", "release", rid, EHL_DEPLOYMENT=str(own_deployment), **key)
    assert tried.returncode == 3 and "deployment_not_root_owned" in tried.stderr, tried.stderr
    assert not any((site.workspace / "outputs" / "released").iterdir())


def test_only_the_processor_holds_the_master_secret_and_the_others_need_none(site: Site) -> None:
    stolen = site.as_user(RESEARCHER, "cat", str(site.master_key))
    assert stolen.returncode != 0 and "Permission denied" in stolen.stderr
    for user in (RESEARCHER, OFFICER_1):
        verified = site.ehl(user, "audit", "verify")
        assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
        shown = site.ehl(user, "audit", "show")
        assert shown.returncode == 0, shown.stderr


def test_the_audit_log_cannot_be_written_or_removed_by_the_roles(site: Site) -> None:
    log = site.workspace / "audit" / "audit.jsonl"
    for user in (RESEARCHER, OFFICER_1, PROCESSOR):
        forged = site.as_user(user, "sh", "-c", f"echo '{{}}' >> {log}")
        assert forged.returncode != 0 and "Permission denied" in forged.stderr
        removed = site.as_user(user, "rm", "-f", str(log))
        assert removed.returncode != 0 and log.exists()


def _officer(site: Site, officer: str, *args: str):
    key = {
        "EHL_OFFICER_KEY": str(site.officer_keys[officer]),
        "EHL_OFFICER_KEY_PASSPHRASE": OFFICER_PASSPHRASE,
    }
    return site.ehl(officer, "outputs", *args, **key)


def test_the_gate_alone_writes_pending_and_the_researcher_cannot(site: Site, requested: str) -> None:
    rid = requested
    request = next(
        e
        for e in site.audit_entries()
        if e["action"] == "output_request" and (e.get("details") or {}).get("request_id") == rid
    )
    # the researcher acted; the gate's account wrote it (the audit writer's peer credentials)
    assert (request["actor"], request["account"], request["decision"]) == (RESEARCHER, GATE, "allowed")
    folder = site.workspace / "outputs" / "pending" / rid
    assert folder.owner() == GATE and (folder / "request.sig").exists()
    pending = folder.parent
    for user in (RESEARCHER, OFFICER_1):
        for attempt in (
            f"mkdir {pending}/forged",
            f"touch {folder}/request.json",
            f"cp /etc/hostname {folder}/output/output.json",
            f"rm -rf {folder}",
        ):
            tried = site.as_user(user, "sh", "-c", attempt)
            assert tried.returncode != 0 and "Permission denied" in tried.stderr, (
                user,
                attempt,
                tried.stderr,
            )
    assert (folder / "request.json").exists() and not (pending / "forged").exists()
    listed = site.ehl(RESEARCHER, "outputs", "list")  # the officers' zone: a plain refusal
    assert listed.returncode == 3 and "officers_zone" in listed.stderr, listed.stdout + listed.stderr


def test_a_request_forged_into_pending_is_refused_at_release(site: Site, requested: str) -> None:
    rid = requested
    pending = site.workspace / "outputs" / "pending"
    # root (or anyone who gets write access) places requests the gate never made
    unsigned, resigned = pending / "20990101-000000-age-00000001", pending / "20990101-000000-age-00000002"
    shutil.copytree(pending / rid, unsigned)
    (unsigned / "request.sig").unlink()
    shutil.copytree(pending / rid, resigned)  # a genuine signature, over another request's fields
    for forged, message in ((unsigned, "not signed by the output gate"), (resigned, "does not match")):
        fields = json.loads((forged / "request.json").read_text())
        (forged / "request.json").write_text(json.dumps(fields | {"request_id": forged.name}))
        tried = _officer(site, OFFICER_1, "release", forged.name)
        assert tried.returncode == 5 and message in tried.stderr, tried.stdout + tried.stderr
        refusal = site.audit_entries()[-1]
        assert (refusal["action"], refusal["decision"], refusal["account"]) == (
            "output_release",
            "failed",
            OFFICER_1,
        )
        assert "TamperedError" in refusal["reason"]
        shutil.rmtree(forged)
    assert not any((site.workspace / "outputs" / "released").iterdir())


def test_two_officers_review_and_release_and_nobody_reviews_twice(site: Site, requested: str) -> None:
    rid = requested
    released = site.workspace / "outputs" / "released"
    first = _officer(site, OFFICER_1, "release", rid)
    assert first.returncode == 0 and "more approval" in first.stdout, first.stdout + first.stderr
    assert not (released / rid).exists()  # one review is not yet a release
    twice = _officer(site, OFFICER_1, "release", rid)
    assert twice.returncode == 3 and "four_eyes" in twice.stderr, twice.stderr
    # (the researcher is refused as no officer at all: see the first test)
    second = _officer(site, OFFICER_2, "release", rid)
    assert second.returncode == 0 and "Released" in second.stdout, second.stdout + second.stderr
    assert (released / rid / "manifest.json").exists()
    decisions = sorted((site.workspace / "outputs" / "decisions").glob(f"{rid}--*.json"))
    assert [d.owner() for d in decisions] == [OFFICER_1, OFFICER_2]  # each officer's own file
    verified = site.ehl(OFFICER_1, "outputs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_released_bundle_edited_by_its_own_releaser_is_caught(site: Site, requested: str) -> None:
    """The officer who released a bundle owns its files: they change a count, recompute the
    manifest and SHA256SUMS so the bundle agrees with itself, and verify still says tampered,
    because the bundle's hash was recorded in the audit log at release (which no role can write)."""
    bundle = site.workspace / "outputs" / "released" / requested
    assert bundle.is_dir(), "runs after the two-officer release above"
    edit = (
        "import hashlib, json, pathlib\n"
        f"b = pathlib.Path({str(bundle)!r})\n"
        "h = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()\n"
        "csv = next(p for p in b.glob('*.csv'))\n"
        "lines = csv.read_text().splitlines()\n"
        "lines[1] = lines[1].rsplit(',', 1)[0] + ',7'\n"  # a suppressed-size count, say
        "csv.write_text('\\n'.join(lines) + '\\n')\n"
        "m = json.loads((b / 'manifest.json').read_text())\n"
        "m['files'] = {n: h(b / n) for n in m['files']}\n"
        "(b / 'manifest.json').write_text(json.dumps(m, indent=2))\n"
        "names = [*m['files'], 'manifest.json']\n"
        "(b / 'SHA256SUMS').write_text(''.join(f'{h(b / n)}  {n}\\n' for n in names))\n"
    )
    done = site.python(OFFICER_2, edit)
    assert done.returncode == 0, done.stdout + done.stderr
    verified = site.ehl(OFFICER_1, "outputs", "verify")
    assert verified.returncode == 5, verified.stdout + verified.stderr
    assert requested in verified.stdout + verified.stderr


def test_the_linkage_report_is_a_processors_step_refused_to_a_researcher(site: Site) -> None:
    tried = site.ehl(RESEARCHER, "link", "report")
    assert tried.returncode == 3, tried.stdout + tried.stderr
    assert "user_not_in_role" in tried.stderr or "not_in_role_group" in tried.stderr, tried.stderr
    refusal = site.audit_entries()[-1]
    assert (refusal["action"], refusal["decision"], refusal["account"]) == (
        "link_report",
        "refused",
        RESEARCHER,
    ), refusal
