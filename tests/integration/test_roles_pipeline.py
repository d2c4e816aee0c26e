"""The pipeline run by role, for real: the processing as the data processor's account, the
analyses as the researcher's, each on the OS-account site of ``os_site.py``.

The synthetic region is generated once in this process (as root) and placed in ``landing/`` and
``reference/`` owned by the processor, as a TRE's file transfer would. The processor then runs
``ehl run approved`` with the master key only it can read, and is told the analyses are the
researchers' work; the researcher runs the same command, which runs only the analyses. The
researcher then tries what their role does not allow: the identifiable, pseudonymised and linked
zones and the master key are refused by the OS, and a processing stage by the engine (exit 3,
audited under their account).
"""

from __future__ import annotations

import pwd
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import PIPELINE_ANALYSES
from tests.integration.os_site import GATE, OFFICER_1, PROCESSOR, RESEARCHER, Site, place_region

pytestmark = [pytest.mark.integration, pytest.mark.spark]

PROCESSING = ("validate", "pseudonymise", "link", "research_dataset")
#: The smallest region the generator makes; analyses that cannot be estimated on it say so in a
#: note of their own and the run goes on.
PEOPLE, SEED = 1000, 5
RUN_TIMEOUT = 1200


@dataclass(frozen=True)
class RolesRun:
    site: Site
    processor: subprocess.CompletedProcess[str]
    researcher: subprocess.CompletedProcess[str]
    #: how many audit entries there were before either run
    audit_before: int


def _analysis_options() -> list[str]:
    return [arg for name in PIPELINE_ANALYSES for arg in ("--analysis", name)]


def _master_key(site: Site) -> dict[str, str]:
    return {
        "EHL_MASTER_KEY_FILE": str(site.master_key),
        "EHL_MASTER_KEY_PASSPHRASE_FILE": str(site.master_passphrase),
    }


def _ehl_logged(site: Site, user: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``site.ehl`` with its output going to a log file as it runs (read back when it ends), so a
    run that is slow on a loaded machine shows how far it got."""
    env = site.env(user, **extra)
    cmd = [
        "runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
        str(Path(sys.executable).with_name("ehl")), *args,
    ]  # fmt: skip
    log = site.base / f"{user}-{args[0]}.log"
    with log.open("w") as out:
        try:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=site.base, timeout=RUN_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"'ehl {' '.join(args)}' as {user} did not finish in {RUN_TIMEOUT} s:\n" + log.read_text()
            ) from None
    text = log.read_text()
    return subprocess.CompletedProcess(cmd, proc.returncode, text, text)


@pytest.fixture(scope="module")
def roles_run(site: Site, tmp_path_factory: pytest.TempPathFactory) -> RolesRun:
    """A small region placed by root, then one ``ehl run approved`` as the processor and one as
    the researcher."""
    from ig_policies.workspace import Workspace
    from synthetic import generate_region

    raw = Workspace.open(tmp_path_factory.mktemp("roles-region") / "ws")
    generate_region(raw, people=PEOPLE, seed=SEED)
    place_region(site, raw.root)
    before = len(site.audit_entries()) if (site.workspace / "audit" / "audit.jsonl").exists() else 0
    processor = _ehl_logged(site, PROCESSOR, "run", "approved", *_analysis_options(), **_master_key(site))
    researcher = _ehl_logged(site, RESEARCHER, "run", "approved", *_analysis_options())
    return RolesRun(site, processor, researcher, before)


def _stage_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("✓", 1)[1].split(": ")[0].strip() for line in done.stdout.splitlines() if "✓" in line]


def test_the_processor_runs_the_processing_and_is_told_who_runs_the_analyses(roles_run: RolesRun) -> None:
    done = roles_run.processor
    assert done.returncode == 0, done.stdout + done.stderr
    assert _stage_lines(done) == list(PROCESSING), done.stdout
    said = " ".join(done.stdout.split())
    assert "are the researchers' work" in said and "A researcher runs them" in said
    assert "ehl run approved" in said
    analysis = roles_run.site.workspace / "analysis"
    for table in ("clients", "panel", "comparison_people", "comparison_pool", "match_rates"):
        assert (analysis / f"{table}.parquet").exists(), table


def test_the_researcher_runs_only_the_analyses(roles_run: RolesRun) -> None:
    done = roles_run.researcher
    assert done.returncode == 0, done.stdout + done.stderr
    assert _stage_lines(done) == [f"analysis:{name}" for name in PIPELINE_ANALYSES], done.stdout
    pending = roles_run.site.workspace / "outputs" / "pending"
    assert any(pending.iterdir())


def test_each_stage_is_audited_under_the_account_that_ran_it(roles_run: RolesRun) -> None:
    entries = roles_run.site.audit_entries()[roles_run.audit_before :]
    allowed = [e for e in entries if e["decision"] == "allowed"]
    by_role: dict[str, set[str]] = {}
    for entry in allowed:
        by_role.setdefault(entry["role"], set()).add(entry["action"])
        expected = {"data_processor": PROCESSOR, "researcher": RESEARCHER}[entry["role"]]
        # the output gate writes its requests' entries itself, for the researcher its socket named
        account = GATE if entry["action"] == "output_request" else expected
        assert (entry["actor"], entry["account"]) == (expected, account), entry
        assert "mode" not in entry  # not DEMO
    assert {"link", "build_research_dataset"} <= by_role["data_processor"]
    assert len(by_role["data_processor"]) >= len(PROCESSING)
    assert {"equity_audit", "concordance", "success_factors", "output_request"} <= by_role["researcher"]


def test_each_role_keeps_its_own_ledger_and_scratch_and_writes_nothing_world_readable(
    roles_run: RolesRun,
) -> None:
    ws = roles_run.site.workspace
    owner = {path: pwd.getpwuid(path.stat().st_uid).pw_name for path in (ws / ".state", ws / "research")}
    assert owner == {ws / ".state": PROCESSOR, ws / "research": RESEARCHER}
    assert (ws / ".state" / "stages.json").exists() and (ws / "research" / "stages.json").exists()
    # Spark's shuffle files: the processor's own folder, open to nobody else
    scratch = Path(tempfile.gettempdir()) / f"ehl-spark-{pwd.getpwnam(PROCESSOR).pw_uid}"
    assert scratch.stat().st_uid == pwd.getpwnam(PROCESSOR).pw_uid
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700
    # each account's Prefect database in its own home
    for user in (PROCESSOR, RESEARCHER):
        prefect = roles_run.site.base / "home" / user / ".prefect"
        assert prefect.is_dir() and prefect.stat().st_uid == pwd.getpwnam(user).pw_uid
    # umask 027 and the zones' modes: nothing the accounts wrote is open to other accounts (the
    # administrator's own folders, such as outputs/ above pending/ and released/, are root's)
    opened = [
        str(path.relative_to(ws))
        for path in ws.rglob("*")
        if not path.is_symlink() and path.stat().st_uid != 0 and path.stat().st_mode & stat.S_IRWXO
    ]
    assert opened == []
    assert [p for p in ws.rglob("*") if p.is_file() and p.stat().st_mode & stat.S_IRWXO] == []


def test_the_researcher_cannot_read_the_processors_zones_or_the_master_key(roles_run: RolesRun) -> None:
    site = roles_run.site
    ws = site.workspace
    for target in (
        ws / "landing" / "employment" / "ways_to_work.csv",
        ws / "landing",
        ws / "pseudonymised",
        ws / "linked",
        ws / ".state" / "stages.json",
        site.master_key,
    ):
        tried = site.as_user(RESEARCHER, "cat", str(target)) if target.is_file() else None
        listed = site.as_user(RESEARCHER, "ls", str(target))
        assert listed.returncode != 0 and "Permission denied" in listed.stderr, target
        if tried is not None:
            assert tried.returncode != 0 and "Permission denied" in tried.stderr, target


def test_a_processing_stage_run_by_the_researcher_is_refused_and_audited(roles_run: RolesRun) -> None:
    site = roles_run.site
    ws = site.workspace
    ledger = (ws / ".state" / "stages.json").read_bytes()
    tried = site.ehl(RESEARCHER, "pseudonymise")
    assert tried.returncode == 3, tried.stdout + tried.stderr
    assert "user_not_in_role" in tried.stderr or "not_in_role_group" in tried.stderr
    refusal = site.audit_entries()[-1]
    assert (refusal["decision"], refusal["account"], refusal["role"]) == (
        "refused",
        RESEARCHER,
        "data_processor",
    )
    assert refusal["rule"] in {"user_not_in_role", "not_in_role_group"}
    assert (ws / ".state" / "stages.json").read_bytes() == ledger


def test_an_account_in_neither_pipeline_role_is_refused_naming_the_rule(roles_run: RolesRun) -> None:
    site = roles_run.site
    tried = site.ehl(OFFICER_1, "run", "approved")
    assert tried.returncode == 3, tried.stdout + tried.stderr
    assert "no_role_for_any_stage" in tried.stderr
    refusal = site.audit_entries()[-1]
    assert (refusal["decision"], refusal["rule"], refusal["account"]) == (
        "refused",
        "no_role_for_any_stage",
        OFFICER_1,
    )
