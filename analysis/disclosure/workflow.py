"""The output workflow: request (researcher), review, release or reject (IG officer), verify.

How an analysis output reaches the outside world:

1. An analysis builds a typed output and calls ``request_output`` (or ``stage_output``, which
   parks it in ``research/outputs/<name>/`` for the researcher to request later with
   ``ehl outputs request NAME --justification ...``). The output goes to the output gate
   (``analysis.disclosure.gate``, its own OS account), which checks it at once and writes
   ``outputs/pending/<id>/`` with its check report, a preview of the protected table and the
   gate's signature over the request and the output's hash. Only the gate writes ``pending/``.
2. The IG officer reviews pending requests (``review_requests``): each report, and which earlier
   releases from the same data it could be combined with.
3. ``release_output`` re-checks the saved output against everything released since, writes
   ``outputs/released/<id>/`` (protected CSV, PNG, manifest, SHA-256 checksums), re-verifies the
   bundle independently and records it in the release ledger; ``reject_output`` records why not.

Only a user named as IG officer in the policy can release or reject (the policy engine refuses
anyone else), and nobody can decide on their own request (the requester is taken from the
request's audit entry). Every decision (release, approval, reject, request changes, exception) is
signed with the deciding officer's own key over a canonical statement (request, decision, the
pending files' hash, the bundle's hash, the reason, the officer, the time); the signature must
verify against the engine's trust store as that officer's key, and is kept as one flat file in
the officers' zone ``outputs/decisions/`` (never in the gate's ``pending/``); a request's status
is the gate's request plus those decisions. With ``outputs.reviews_required: 2``
two different officers must approve. A release is audited before its bundle is renamed into
place, only after the gate's signature, the pending files' hash and every counted decision
verify; ``verify_release_decision`` later checks each bundle against that audit entry and the
signed decision. Every step is audited.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from filelock import FileLock

from analysis.disclosure.checks import IDENTIFIER_COLUMN, IDENTIFIER_VALUE
from analysis.disclosure.ledger import (
    LedgerEntry,
    append_ledger,
    ledger_dir,
    ledger_entry_for,
    read_ledger,
    small_differences,
)
from analysis.disclosure.outputs import DisclosureOutput, Figure, kind_of, load_output, save_output
from analysis.disclosure.protection import check_output
from analysis.disclosure.report import CheckReport, Finding, Outcome
from analysis.disclosure.suppression import round_to_base
from ig_policies.errors import DisclosureBlocked, InputError, PolicyRefused, TamperedError
from ig_policies.formulas import neutralise_formulas
from ig_policies.policy import OutputRules, Role
from ig_policies.signing import (
    Ed25519PrivateKey,
    load_private_key,
    sign_statement,
    statement_hash,
    verify_statement,
)
from ig_policies.workspace import (
    Workspace,
    atomic_directory,
    content_hash,
    file_sha256,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)

if TYPE_CHECKING:
    from analysis.disclosure.gate import GateReceipt

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: a request id (time, name, random suffix) or an output name: never a path
_NAME_OR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

PENDING, BLOCKED, RELEASED, REJECTED = "pending", "blocked", "released", "rejected"
CHANGES_REQUESTED = "changes_requested"
STATUSES = (PENDING, BLOCKED, RELEASED, REJECTED, CHANGES_REQUESTED)

#: Environment variables the CLI reads an officer's signing key and its passphrase from.
OFFICER_KEY_ENV, OFFICER_KEY_PASSPHRASE_ENV = "EHL_OFFICER_KEY", "EHL_OFFICER_KEY_PASSPHRASE"


@dataclass(frozen=True)
class OfficerSigner:
    """An IG officer's private key, unlocked, to sign decisions on outputs.

    The same passphrase-protected key the officer signs policies with: a decision counts only if
    the trust store says the key belongs to the officer making it, so typing an officer's name is
    not enough to act as them.
    """

    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], passphrase: str) -> OfficerSigner:
        return cls(load_private_key(path, passphrase))


@dataclass(frozen=True)
class OutputRequest:
    """What ``request.json`` says about one request."""

    request_id: str
    name: str
    kind: str
    title: str
    source: str
    status: str
    outcome: str
    summary: str
    requested_by: str
    requested_at: str
    justification: str
    decided_by: str = ""
    decided_at: str = ""
    decision_reason: str = ""
    #: Signed approvals so far (officer, statement hash), when the policy needs two reviews.
    approvals: tuple[dict[str, str], ...] = ()
    #: A signed exception letting an output whose checks say *review* be released.
    exception: dict[str, str] | None = None
    directory: Path = field(default=Path("."), compare=False)

    @classmethod
    def read(cls, directory: Path) -> OutputRequest:
        data = json.loads((directory / "request.json").read_text())
        data["approvals"] = tuple(data.get("approvals", ()))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, directory=directory)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "directory"}
        out["approvals"] = list(self.approvals)
        return out


@dataclass(frozen=True)
class PendingReview:
    """One pending request as the IG officer sees it."""

    request: OutputRequest
    report_text: str
    combinable_with: tuple[LedgerEntry, ...]
    differencing: tuple[Finding, ...]


@dataclass(frozen=True)
class ReleaseResult:
    """What ``release_output`` did: released the bundle, or recorded an approval (two reviews)."""

    request_id: str
    directory: Path
    files: tuple[Path, ...]
    released: bool = True
    approvals_needed: int = 0


@dataclass(frozen=True)
class VerificationReport:
    """The independent re-check of one released bundle."""

    path: Path
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.outcome is Outcome.FAIL for f in self.findings)

    def to_text(self) -> str:
        head = f"{self.path.name}: {'OK' if self.ok else 'PROBLEMS FOUND'}"
        return (
            "\n".join([head, *(f"  {f.line()}" for f in self.findings if f.outcome is not Outcome.PASS)])
            + "\n"
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InputError(
            name,
            "an output name must be lower-case letters, digits, '-' or '_' (at most 64 characters)",
            "use a short descriptive name such as 'equity_age_by_programme'",
        )


def staged_dir(workspace: Workspace) -> Path:
    """Where analyses park outputs for the researcher to request (inside the TRE)."""
    return workspace.zone("research") / "outputs"  # the researchers' own zone: they write it


def stage_output(workspace: Workspace, output: DisclosureOutput, name: str, rules: OutputRules) -> Path:
    """Park an output under ``research/outputs/<name>/`` for ``ehl outputs request NAME`` later.

    A figure is drawn now from its protected table (a render function cannot be saved), so
    staging runs the checks once to obtain that table; protection does not depend on earlier
    releases, so the table drawn now is the one that would be released.
    """
    _check_name(name)
    kind_of(output)
    with atomic_directory(staged_dir(workspace) / name) as tmp:
        save_output(_drawn(output, rules), tmp)
    return staged_dir(workspace) / name


def list_staged(workspace: Workspace) -> list[str]:
    d = staged_dir(workspace)
    return sorted(p.name for p in d.iterdir() if (p / "output.json").exists()) if d.exists() else []


def _drawn(
    output: DisclosureOutput, rules: OutputRules, report: CheckReport | None = None
) -> DisclosureOutput:
    """A figure with a render function becomes one whose PNG was drawn from the protected table."""
    if not isinstance(output, Figure) or output.render is None:
        return output
    report = report or check_output(output, rules)
    return Figure(
        table=output.table,
        title=output.title,
        png=report.png,
        description=output.description,
        drawn_from_protected_table=report.png is not None,
    )


def _new_request_id(workspace: Workspace, name: str) -> str:
    """Time, name and a random suffix, so two processes requesting at once never share an id.

    Only ``pending/`` is looked at: a researcher may not see ``released/`` (the officers' zone), and
    every released bundle was pending first under the same id.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    while True:
        candidate = f"{stamp}-{name}-{secrets.token_hex(4)}"
        if not (workspace.pending / candidate).exists():
            return candidate


def _write_preview(directory: Path, name: str, report: CheckReport) -> list[Path]:
    files = []
    if report.protected is not None:
        files.append(write_csv(neutralise_formulas(report.protected), directory / f"{name}.csv"))
    if report.png:
        files.append(write_bytes(directory / f"{name}.png", report.png))
    return files


def _gate(workspace: Workspace, engine: Any) -> Any:
    """The deployment's output gate: its socket, or (demo mode and tests) an in-process gate."""
    return engine.deployment.output_gate(workspace)


def submit_output(
    workspace: Workspace,
    engine: Any,
    actor: str,
    output: DisclosureOutput,
    name: str,
    justification: str,
) -> GateReceipt:
    """Send ``output`` to the output gate, which checks it and stores the signed request.

    Only the gate writes ``outputs/pending/`` (see ``analysis.disclosure.gate``): through its
    socket when the deployment runs it as a service (the files' bytes go, never a path), or in
    this process with the DEMO gate key. The receipt carries the id, the status and the report.
    """
    from analysis.disclosure.gate import OutputGate, pack_output, submit
    from ig_policies.gate_keys import load_gate_key

    _check_name(name)
    kind_of(output)
    settings = _gate(workspace, engine)
    if settings.socket is None:
        gate = OutputGate(workspace, load_gate_key(settings.signing_key))
        return gate.accept(engine, actor, output, name, justification)
    listing, body = pack_output(_drawn(output, engine.policy.outputs))
    header = {"request": "output", "name": name, "justification": justification, "files": listing}
    return submit(settings.socket, header, body)


def request_output(
    workspace: Workspace,
    engine: Any,
    actor: str,
    output: DisclosureOutput,
    name: str,
    justification: str,
) -> str:
    """Have the output gate check ``output`` and place it in ``outputs/pending/<id>/``; the id.

    The request is recorded whatever the outcome, so the researcher can read the report; an
    output that fails is marked ``blocked`` and cannot be released until it is changed and
    requested again. The gate runs it as a researcher step (audited). See ``submit_output``.
    """
    return submit_output(workspace, engine, actor, output, name, justification).request_id


def request_staged(workspace: Workspace, engine: Any, actor: str, name: str, justification: str) -> str:
    """Request an output an analysis staged under ``research/outputs/<name>/``."""
    directory = staged_dir(workspace) / name
    if not (directory / "output.json").exists():
        staged = list_staged(workspace)
        raise InputError(
            str(directory),
            f"no analysis output named '{name}' is waiting to be requested",
            f"staged outputs: {', '.join(staged)}" if staged else "run the analysis that prepares it first",
        )
    return request_output(workspace, engine, actor, load_output(directory), name, justification)


def _find_request(workspace: Workspace, id_or_name: str) -> OutputRequest:
    direct = workspace.pending / id_or_name
    if _NAME_OR_ID.match(id_or_name) and (direct / "request.json").exists():
        return with_decisions(workspace, OutputRequest.read(direct))
    matches = [r for r in list_requests(workspace) if r.name == id_or_name and r.status in (PENDING, BLOCKED)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(
            id_or_name,
            f"{len(matches)} open requests share this name",
            f"use the request id: {', '.join(m.request_id for m in matches)}",
        )
    raise InputError(id_or_name, "no output request has this id", "list requests with 'ehl outputs list'")


def justify_request(
    workspace: Workspace, engine: Any, actor: str, id_or_name: str, justification: str
) -> str:
    """Attach (or replace) the justification of one's own open request, through the output gate."""
    from analysis.disclosure.gate import OutputGate, submit
    from ig_policies.gate_keys import load_gate_key

    settings = _gate(workspace, engine)
    if settings.socket is None:
        gate = OutputGate(workspace, load_gate_key(settings.signing_key))
        return gate.justify(engine, actor, id_or_name, justification).request_id
    header = {"request": "justify", "name": id_or_name, "justification": justification}
    return submit(settings.socket, header).request_id


def list_requests(workspace: Workspace, status: str | None = None) -> list[OutputRequest]:
    """All requests (oldest first) as the gate stored them with the officers' decisions since,
    optionally only those with ``status``."""
    if not workspace.pending.exists():
        return []
    found = [
        with_decisions(workspace, OutputRequest.read(p))
        for p in sorted(workspace.pending.iterdir())
        if (p / "request.json").exists()
    ]
    return [r for r in found if status is None or r.status == status]


# --------------------------------------------------------------------------------------------
# Officers' decisions: flat files in the officers' zone, never in the gate's pending/


def decision_files(workspace: Workspace, request_id: str) -> list[Path]:
    """The signed decision files on ``request_id``, oldest first."""
    folder = workspace.zone("decisions")
    return sorted(folder.glob(f"{request_id}--*.json")) if folder.is_dir() else []


def _signed_decisions(workspace: Workspace, request_id: str) -> list[dict[str, Any]]:
    out = []
    for path in decision_files(workspace, request_id):
        try:
            signed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        statement = signed.get("statement") if isinstance(signed, dict) else None
        if isinstance(statement, dict) and statement.get("request_id") == request_id:
            out.append(signed | {"file": path.name})
    return out


def _apply_decisions(request: OutputRequest, decisions: list[dict[str, Any]]) -> OutputRequest:
    """The request's state after ``decisions`` (approvals, exception, final decision)."""
    approvals, exception = list(request.approvals), request.exception
    changes: dict[str, Any] = {}
    final = {"release": RELEASED, "reject": REJECTED, "request_changes": CHANGES_REQUESTED}
    for signed in decisions:
        statement = signed["statement"]
        decision, officer = statement.get("decision"), str(statement.get("officer", ""))
        if decision == "approve":
            approvals.append({"officer": officer, "statement_sha256": signed.get("statement_sha256", "")})
        elif decision == "grant_exception":
            exception = {
                "officer": officer,
                "justification": str(statement.get("text", "")),
                "statement_sha256": str(signed.get("statement_sha256", "")),
            }
        elif decision in final:
            changes = {
                "status": final[decision],
                "decided_by": officer,
                "decided_at": str(statement.get("decided_at", "")),
                "decision_reason": str(statement.get("text", "")),
            }
    return replace(request, approvals=tuple(approvals), exception=exception, **changes)


def with_decisions(workspace: Workspace, request: OutputRequest) -> OutputRequest:
    """``request`` as the gate stored it, with the officers' decisions on it applied (unverified:
    a release verifies every decision it counts)."""
    try:
        decisions = _signed_decisions(workspace, request.request_id)
    except PermissionError:  # a researcher does not see the officers' zone
        decisions = []
    return _apply_decisions(request, decisions)


def _verified_decisions(
    engine: Any, workspace: Workspace, request: OutputRequest, pending_sha256: str
) -> list[dict[str, Any]]:
    """The decisions on ``request``, each checked: signed by the officer it names with a trusted
    key, about these very pending files. Anything else is tampering (exit 5)."""
    found = _signed_decisions(workspace, request.request_id)
    for signed in found:
        statement = signed["statement"]
        verify_statement(
            engine.trust_store, statement, str(signed.get("key_id", "")), str(signed.get("signature", "")),
            str(statement.get("officer", "")),
        )  # fmt: skip
        if statement.get("pending_sha256") != pending_sha256:
            raise TamperedError(
                f"The decision {signed['file']} on request {request.request_id} was signed for other files.",
                hint="do not release it; tell the IG lead that pending files or decisions were altered",
            )
    return found


def review_requests(workspace: Workspace, engine: Any, actor: str) -> list[PendingReview]:
    """What the IG officer reviews (audited, IG officer only): see ``pending_reviews``."""
    with engine.step(actor, Role.IG_OFFICER, "output_review") as step:
        reviews = pending_reviews(workspace, engine.policy.outputs)
        step.counts(pending_requests=len(reviews))
    return reviews


def pending_reviews(workspace: Workspace, rules: OutputRules) -> list[PendingReview]:
    """Pending requests with their reports and the earlier releases each could combine with.

    The differencing comparison is made again against the ledger as it is now, because a table
    released after this request was made may combine with it.
    """
    reviews = []
    for request in list_requests(workspace, PENDING):
        earlier = read_ledger(workspace, request.source)
        output = load_output(request.directory / "output")
        entry = ledger_entry_for(output)
        differencing: list[Finding] = []
        if entry is not None:
            for e in earlier:
                for d in small_differences(entry, e, rules.min_cell_count):
                    differencing.append(
                        Finding(
                            "differencing",
                            d.item,
                            Outcome.FAIL if d.certain else Outcome.REVIEW,
                            d.description,
                        )
                    )
        reviews.append(
            PendingReview(
                request=request,
                report_text=(request.directory / "check_report.txt").read_text(),
                combinable_with=earlier,
                differencing=tuple(differencing),
            )
        )
    return reviews


def _audit_entries(engine: Any, action: str, request_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in engine.audit.entries()
        if e.get("action") == action
        and e.get("decision") == "allowed"
        and (e.get("details") or {}).get("request_id") == request_id
    ]


def _checked_pending_hash(engine: Any, request: OutputRequest) -> tuple[str, str]:
    """The pending output's hash and who requested it, as the output gate signed them and the
    request's audit entry recorded them.

    Refused (tampering, exit 5) when the request is not signed by the output gate (files placed in
    ``pending/`` by anyone else), when its request file was edited, or when the output's files
    differ from those the gate signed and the audit log recorded: a figure swapped for another
    picture, an edited table.
    """
    from ig_policies.gate_keys import verify_request

    public_key = engine.deployment.output_gate(engine.workspace).verifier()
    fields, signed_sha256 = verify_request(public_key, request.directory, request.request_id)
    now = content_hash(request.directory / "output")
    if now != signed_sha256:
        raise TamperedError(
            f"The files of request {request.request_id} have changed since the output gate signed them "
            f"(signed {signed_sha256[:12]}, now {now[:12]}).",
            hint="do not release it: reject it, ask the researcher to request the output again, "
            "and tell the IG lead that pending files were altered",
        )
    entries = _audit_entries(engine, "output_request", request.request_id)
    recorded = (entries[-1].get("details") or {}).get("output_sha256") if entries else None
    if recorded != now:
        raise TamperedError(
            f"Request {request.request_id} has no request entry with these files' hash in the audit log.",
            hint="do not release it; ask the researcher to request the output again and tell the IG lead",
        )
    return now, str(entries[-1].get("actor") or fields.get("requested_by") or "")


def _sign_decision(
    engine: Any,
    signer: OfficerSigner,
    actor: str,
    request: OutputRequest,
    decision: str,
    text: str,
    pending_sha256: str,
    bundle_sha256: str = "",
) -> dict[str, Any]:
    """Sign the canonical statement of a decision and check it against the engine's trust store."""
    store = getattr(engine, "trust_store", None)
    if store is None:
        raise PolicyRefused(
            "no_trust_store",
            "The policy engine has no trust store, so no officer's decision can be checked.",
            hint="load the policy with a trust store (--trust-store / EHL_TRUST_STORE)",
        )
    statement = {
        "request_id": request.request_id,
        "decision": decision,
        "pending_sha256": pending_sha256,
        "bundle_sha256": bundle_sha256,
        "text": text,
        "officer": actor,
        "decided_at": _now(),
        "policy_hash": engine.policy_hash,
    }
    kid, signature = sign_statement(signer.private_key, statement)
    verify_statement(store, statement, kid, signature, actor)
    return {
        "statement": statement,
        "statement_sha256": statement_hash(statement),
        "key_id": kid,
        "signature": signature,
    }


def _record_decision(step: Any, signed: dict[str, Any]) -> None:
    step.detail(
        decision=signed["statement"]["decision"],
        statement_sha256=signed["statement_sha256"],
        key_id=signed["key_id"],
        signature=signed["signature"],
        pending_sha256=signed["statement"]["pending_sha256"],
        bundle_sha256=signed["statement"]["bundle_sha256"],
    )


def _write_decision(workspace: Workspace, request: OutputRequest, signed: dict[str, Any]) -> Path:
    """Keep the signed decision in the officers' zone: ``decisions/<id>--<time>-<decision>.json``.

    One new flat file per decision (the zone lets any officer add a file and nobody change
    another's), never a change to the gate's ``pending/``.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{request.request_id}--{stamp}-{signed['statement']['decision']}.json"
    return write_json(workspace.zone("decisions") / name, signed)


def _refuse_own_request(request: OutputRequest, requester: str, actor: str, what: str) -> None:
    """Four eyes: whoever requested (as the audit log says, or request.json) never decides."""
    if actor in (request.requested_by, requester):
        raise PolicyRefused(
            "four_eyes",
            f"'{actor}' made request {request.request_id} and cannot also {what} it.",
            hint="another IG officer named in the policy must review it",
        )


def _manifest_checks(report: CheckReport) -> dict[str, Any]:
    """Check results for the manifest; withheld items are only counted, never told apart."""
    return {
        "outcome": report.outcome.value,
        "items_suppressed": len({f.key for f in report.withheld}),
        "findings": [f.to_dict() for f in report.findings if not f.withheld],
    }


def _column_descriptions(protected: pd.DataFrame, rules: OutputRules) -> dict[str, str]:
    out = {}
    for column in protected.columns:
        if column.startswith("count_") and column.endswith("_rounded"):
            what = column.removeprefix("count_").removesuffix("_rounded")
            out[column] = (
                f"number of {what}, rounded to the nearest {rules.rounding_base}; empty where suppressed"
            )
        elif column == "n_people_rounded":
            out[column] = f"number of people behind the row, rounded to the nearest {rules.rounding_base}"
        elif column == "note":
            out[column] = "'suppressed' where the row is withheld by disclosure control"
    return out


def release_output(
    workspace: Workspace, engine: Any, actor: str, request_id: str, signer: OfficerSigner
) -> ReleaseResult:
    """Release a pending request (IG officer only): re-check, sign, write, audit, then publish.

    ``signer`` is the acting officer's own key: the signed decision must verify against the trust
    store as that officer's. With ``outputs.reviews_required: 2`` the first officer's call records
    a signed approval and a second, different officer releases. The bundle is built in a hidden
    folder inside ``outputs/released/`` and renamed into place only after the audit entry (with the
    bundle's hash and the signature) is written: if the audit cannot be written, nothing is
    released and the request stays pending.

    Raises ``DisclosureBlocked`` if the re-check fails, ``PolicyRefused`` for four eyes, a key that
    is not the officer's, or a *review* outcome without a signed exception, and ``TamperedError``
    if the pending files differ from those recorded when the request was made.
    """
    engine.require(actor, Role.IG_OFFICER, "output_release")  # before anything on disk is touched
    request = _find_request(workspace, request_id)
    rules: OutputRules = engine.policy.outputs
    ledger_dir(workspace).mkdir(parents=True, exist_ok=True)
    final = workspace.released / request.request_id
    tmp: Path | None = None
    # One release at a time: the re-check against the ledger and the ledger update must not
    # interleave with another release, or two tables that difference could both slip out.
    # The lock file is shared by every officer: group-writable whatever the umask.
    lock = FileLock(str(ledger_dir(workspace) / ".release.lock"), timeout=300, mode=0o660)
    try:
        with lock:
            with engine.step(actor, Role.IG_OFFICER, "output_release") as step:
                # as it is now, under the lock
                request = with_decisions(workspace, OutputRequest.read(request.directory))
                if request.status != PENDING:
                    raise DisclosureBlocked(
                        f"Request {request.request_id} is {request.status}, so it cannot be released.",
                        hint="a blocked output must be changed and requested again; see its check report",
                    )
                pending_sha256, requester = _checked_pending_hash(engine, request)
                _refuse_own_request(request, requester, actor, "release")
                # only decisions that verify count: an approval or exception nobody signed is tampering
                request = _apply_decisions(
                    OutputRequest.read(request.directory),
                    _verified_decisions(engine, workspace, request, pending_sha256),
                )
                if any(a.get("officer") == actor for a in request.approvals):
                    raise PolicyRefused(
                        "four_eyes",
                        f"'{actor}' has already approved request {request.request_id}; "
                        "a second approval must come from a different IG officer.",
                        hint="ask another IG officer named in the policy to review and release it",
                    )
                output = load_output(request.directory / "output")
                report = check_output(output, rules, read_ledger(workspace, request.source))
                if report.outcome is Outcome.FAIL:
                    reasons = "; ".join(f"{f.rule}: {f.item}: {f.reason}" for f in report.blocking)
                    raise DisclosureBlocked(
                        f"Request {request.request_id} fails its re-check at release: {reasons}.",
                        hint="reject it with the reason, and ask the researcher to change the output",
                    )
                if report.outcome is Outcome.REVIEW and not request.exception:
                    raise PolicyRefused(
                        "review_needs_exception",
                        f"The checks of request {request.request_id} say an IG officer must look at it "
                        f"({report.summary()}), and no exception has been granted.",
                        hint="if it is safe, grant a signed exception first: "
                        "'ehl outputs grant-exception ID --justification ...'",
                    )
                step.inputs(request.directory / "output")
                needed = rules.reviews_required - len(request.approvals) - 1
                if needed > 0:
                    signed = _sign_decision(engine, signer, actor, request, "approve", "", pending_sha256)
                    _record_decision(step, signed)
                    step.detail(request_id=request.request_id, approvals_needed=needed)
                else:
                    tmp = workspace.released / f".building-{request.request_id}-{secrets.token_hex(4)}"
                    _build_bundle(tmp, engine, actor, request, output, report, rules)
                    bundle_sha256 = content_hash(tmp)
                    signed = _sign_decision(
                        engine, signer, actor, request, "release", "", pending_sha256, bundle_sha256
                    )
                    _record_decision(step, signed)
                    step.outputs(tmp)
                    step.detail(
                        request_id=request.request_id, kind=request.kind, outcome=report.outcome.value
                    )
            # The audit entry is written: only now does anything change.
            if needed > 0:
                _write_decision(workspace, request, signed)
                return ReleaseResult(request.request_id, request.directory, (), False, needed)
            assert tmp is not None
            os.rename(tmp, final)
            tmp = None
            _write_decision(workspace, request, signed)
            entry = ledger_entry_for(output, request.request_id, signed["statement"]["decided_at"], report)
            if entry is not None:
                append_ledger(workspace, entry)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
    written = tuple(sorted(p for p in final.iterdir() if p.is_file()))
    return ReleaseResult(request.request_id, final, written)


def _build_bundle(
    tmp: Path,
    engine: Any,
    actor: str,
    request: OutputRequest,
    output: DisclosureOutput,
    report: CheckReport,
    rules: OutputRules,
) -> list[Path]:
    """Write the release bundle (tables, figure, manifest, checksums) into ``tmp`` and re-check it."""
    tmp.mkdir(parents=True)
    policy = engine.policy
    files = _write_preview(tmp, request.name, report)
    manifest = {
        "request_id": request.request_id,
        "name": request.name,
        "title": request.title,
        "description": getattr(output, "description", ""),
        "population": getattr(output.table if isinstance(output, Figure) else output, "population", ""),
        "kind": request.kind,
        "source": request.source,
        "policy": {
            "project_id": policy.project.id,
            "policy_version": getattr(policy, "policy_version", None),
            "policy_hash": engine.policy_hash,
            "output_rules": rules.model_dump(mode="json"),
        },
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "justification": request.justification,
        "approved_by": actor,
        "earlier_approvals": [a.get("officer", "") for a in request.approvals],
        "exception": request.exception,
        "released_at": _now(),
        "checks": _manifest_checks(report),
        "model": report.model_summary or None,
        "columns": _column_descriptions(report.protected, rules) if report.protected is not None else {},
        "files": {f.name: file_sha256(f) for f in files},
    }
    write_json(tmp / "manifest.json", manifest)
    sums = [f"{file_sha256(f)}  {f.name}" for f in [*files, tmp / "manifest.json"]]
    write_text(tmp / "SHA256SUMS", "\n".join(sums) + "\n")
    verification = verify_release(tmp, rules)
    if not verification.ok:
        raise DisclosureBlocked(
            f"The release bundle for {request.request_id} failed its independent re-check:\n"
            + verification.to_text(),
            hint="report this: the protected table should always pass",
        )
    return files


def _officer_decision(
    workspace: Workspace,
    engine: Any,
    actor: str,
    request_id: str,
    signer: OfficerSigner,
    action: str,
    decision: str,
    text: str,
    allowed: tuple[str, ...],
) -> OutputRequest:
    """Sign, audit, then record a decision that publishes nothing (reject, changes, exception)."""
    request = _find_request(workspace, request_id)
    with engine.step(actor, Role.IG_OFFICER, action) as step:
        if request.status not in allowed:
            raise InputError(request.request_id, f"the request is {request.status}", "nothing to do")
        pending_sha256, requester = _checked_pending_hash(engine, request)
        _refuse_own_request(request, requester, actor, decision.replace("_", " "))
        signed = _sign_decision(engine, signer, actor, request, decision, text, pending_sha256)
        _record_decision(step, signed)
        step.detail(request_id=request.request_id, kind=request.kind, text=text)
    _write_decision(workspace, request, signed)
    return with_decisions(workspace, OutputRequest.read(request.directory))


def reject_output(
    workspace: Workspace, engine: Any, actor: str, request_id: str, reason: str, signer: OfficerSigner
) -> None:
    """Reject a pending or blocked request (IG officer only), with a signed, audited reason."""
    if not reason.strip():
        raise InputError(request_id, "a rejection needs a reason", "pass --reason 'what must change'")
    _officer_decision(
        workspace, engine, actor, request_id, signer, "output_reject", "reject", reason.strip(),
        (PENDING, BLOCKED),
    )  # fmt: skip


def request_changes(
    workspace: Workspace, engine: Any, actor: str, request_id: str, comments: str, signer: OfficerSigner
) -> None:
    """Send a request back to the researcher with comments (signed, audited).

    The comments show in ``ehl outputs list`` and the request; the researcher changes the output
    and requests it again (a new request).
    """
    if not comments.strip():
        raise InputError(
            request_id, "a request for changes needs comments", "pass --comments 'what to change'"
        )
    _officer_decision(
        workspace, engine, actor, request_id, signer, "output_request_changes", "request_changes",
        comments.strip(), (PENDING, BLOCKED),
    )  # fmt: skip


def grant_exception(
    workspace: Workspace, engine: Any, actor: str, request_id: str, justification: str, signer: OfficerSigner
) -> None:
    """Grant a signed exception so a request whose checks say *review* may be released.

    Only for the *review* outcome (never for a failed check); the release itself still needs
    its own signed decision, by the same or another officer.
    """
    if not justification.strip():
        raise InputError(
            request_id, "an exception needs a justification", "pass --justification 'why it is safe'"
        )
    request = _find_request(workspace, request_id)
    if request.outcome != Outcome.REVIEW.value:
        raise InputError(
            request.request_id,
            f"its checks say {request.outcome}, and exceptions are only for outputs whose checks say review",
            "release a passing output directly; a failed output must be changed and requested again",
        )
    _officer_decision(
        workspace, engine, actor, request_id, signer, "output_grant_exception", "grant_exception",
        justification.strip(), (PENDING,),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Independent re-check of a released bundle: reads only what left the TRE.


def _fail(item: str, rule: str, reason: str) -> Finding:
    return Finding(rule=rule, item=item, outcome=Outcome.FAIL, reason=reason)


def verify_release(path: str | Path, rules: OutputRules) -> VerificationReport:
    """Re-check one released bundle from its files alone: checksums, manifest, and every number.

    It does not trust the checks that were run before release: each count column must be named as
    a rounded count, hold multiples of the rounding base at or above the threshold (or be empty),
    no column may hold identifiers, models must have enough residual df and people, and figures
    must be PNGs listed with their table.
    """
    bundle = Path(path)
    findings: list[Finding] = []
    manifest_path = bundle / "manifest.json"
    if not manifest_path.exists():
        return VerificationReport(bundle, (_fail("manifest.json", "manifest", "the bundle has no manifest"),))
    manifest = json.loads(manifest_path.read_text())
    sums_path = bundle / "SHA256SUMS"
    if not sums_path.exists():
        findings.append(_fail("SHA256SUMS", "checksums", "the bundle has no checksum file"))
    else:
        for line in sums_path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            target = bundle / name
            if not target.exists():
                findings.append(_fail(name, "checksums", "a file listed in SHA256SUMS is missing"))
            elif file_sha256(target) != digest:
                findings.append(_fail(name, "checksums", "the file has changed since it was released"))
    listed = set(manifest.get("files", {}))
    present = {p.name for p in bundle.iterdir() if p.is_file()} - {"manifest.json", "SHA256SUMS"}
    for extra in sorted(present - listed):
        findings.append(_fail(extra, "manifest", "a file in the bundle is not listed in the manifest"))
    for name, digest in manifest.get("files", {}).items():
        if (bundle / name).exists() and file_sha256(bundle / name) != digest:
            findings.append(_fail(name, "checksums", "the file differs from the checksum in the manifest"))
    if manifest.get("checks", {}).get("outcome") == Outcome.FAIL.value:
        findings.append(_fail("manifest.json", "manifest", "the manifest records a failed check"))
    if not manifest.get("approved_by"):
        findings.append(
            _fail("manifest.json", "manifest", "no IG officer is recorded as approving the release")
        )
    floor = max(round_to_base(rules.min_cell_count, rules.rounding_base), 1)
    for csv in sorted(bundle.glob("*.csv")):
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for column in table.columns:
            if IDENTIFIER_COLUMN.search(column):
                findings.append(
                    _fail(f"{csv.name}:{column}", "row_level", "the column name marks identifiers")
                )
            values = table[column]
            if len(values) and values.str.match(IDENTIFIER_VALUE).mean() > 0.5:
                findings.append(
                    _fail(f"{csv.name}:{column}", "row_level", "the values look like pseudonyms or tokens")
                )
            is_count = column.startswith(("count_", "n_")) or column in ("count", "n", "people", "frequency")
            if not is_count:
                continue
            if not column.endswith("_rounded"):
                findings.append(
                    _fail(f"{csv.name}:{column}", "naming", "a count column must be named as a rounded count")
                )
                continue
            for i, raw in enumerate(values):
                if raw == "":
                    continue
                try:
                    n = float(raw)
                except ValueError:
                    findings.append(_fail(f"{csv.name}:{column} row {i + 1}", "counts", "not a number"))
                    continue
                if n == 0 and not rules.zeros_disclosive:
                    continue
                if n < floor:
                    findings.append(
                        _fail(
                            f"{csv.name}:{column} row {i + 1}",
                            "threshold",
                            f"a published count below {floor}",
                        )
                    )
                elif rules.rounding_base > 1 and n % rules.rounding_base:
                    findings.append(
                        _fail(
                            f"{csv.name}:{column} row {i + 1}",
                            "rounding",
                            f"a published count not rounded to base {rules.rounding_base}",
                        )
                    )
    model = manifest.get("model")
    if model:
        if model.get("model_kind") == "regression":
            df = model.get("residual_df")
            if df is None or df < rules.min_residual_df:
                findings.append(
                    _fail("model", "residual_df", f"fewer than {rules.min_residual_df} residual df")
                )
        for key in ("n_people_rounded", "n_obs_rounded"):
            if model.get(key, floor) < floor:
                findings.append(_fail("model", "threshold", f"the model's {key} is below {floor}"))
    for png in sorted(bundle.glob("*.png")):
        if not png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
            findings.append(_fail(png.name, "figure", "the file is not a PNG image"))
        if not (bundle / f"{png.stem}.csv").exists():
            findings.append(_fail(png.name, "figure", "a figure is released without the table it shows"))
    if not findings:
        findings.append(Finding("verify", bundle.name, Outcome.PASS, "checksums, counts and names all pass"))
    return VerificationReport(bundle, tuple(findings))


def verify_release_decision(workspace: Workspace, engine: Any, bundle: Path) -> list[Finding]:
    """Check a released bundle against the audit log's release entry and the officer's signature.

    Checksums alone prove nothing (whoever edits a CSV can recompute them); the bundle hash in the
    audit log, and the officer's signed statement over it, cannot be recomputed without the audit
    key and the officer's private key.
    """
    rid = bundle.name
    entries = _audit_entries(engine, "output_release", rid)
    entries = [e for e in entries if (e.get("details") or {}).get("decision") == "release"]
    if not entries:
        return [_fail(rid, "release_audit", "the audit log has no signed release entry for this bundle")]
    details = entries[-1]["details"]
    findings: list[Finding] = []
    now = content_hash(bundle)
    if now != details.get("bundle_sha256"):
        findings.append(
            _fail(
                rid,
                "release_audit",
                f"the bundle's files differ from those released (audit entry {entries[-1].get('seq')} "
                f"recorded {str(details.get('bundle_sha256'))[:12]}, the bundle now hashes to {now[:12]})",
            )
        )
    decisions = [f for f in decision_files(workspace, rid) if f.name.endswith("-release.json")]
    if not decisions:
        return [*findings, _fail(rid, "release_decision", "the officer's signed release decision is missing")]
    signed = json.loads(decisions[-1].read_text())
    statement = signed.get("statement", {})
    try:
        verify_statement(
            engine.trust_store, statement, signed.get("key_id", ""), signed.get("signature", ""),
            statement.get("officer", ""),
        )  # fmt: skip
    except (PolicyRefused, TamperedError) as exc:
        findings.append(_fail(rid, "release_decision", exc.message))
    if statement_hash(statement) != details.get("statement_sha256") or signed.get("signature") != details.get(
        "signature"
    ):
        findings.append(
            _fail(
                rid, "release_decision", "the signed decision differs from the one recorded in the audit log"
            )
        )
    if statement.get("bundle_sha256") != now:
        findings.append(_fail(rid, "release_decision", "the officer's signed decision is for other files"))
    return findings


def verify_all_releases(
    workspace: Workspace, rules: OutputRules, engine: Any | None = None
) -> list[VerificationReport]:
    """Re-check every released bundle (the demo ends with this).

    With ``engine`` each bundle is also checked against its audit entry and signed decision
    (``verify_release_decision``); ``ehl outputs verify`` always passes it.
    """
    released = workspace.released
    if not released.exists():
        return []
    reports = []
    for p in sorted(released.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        report = verify_release(p, rules)
        if engine is not None:
            extra = verify_release_decision(workspace, engine, p)
            if extra:
                kept = tuple(f for f in report.findings if f.outcome is not Outcome.PASS)
                report = VerificationReport(p, (*kept, *extra))
        reports.append(report)
    return reports


__all__ = [
    "BLOCKED",
    "CHANGES_REQUESTED",
    "OFFICER_KEY_ENV",
    "OFFICER_KEY_PASSPHRASE_ENV",
    "OfficerSigner",
    "grant_exception",
    "request_changes",
    "verify_release_decision",
    "decision_files",
    "submit_output",
    "with_decisions",
    "PENDING",
    "REJECTED",
    "RELEASED",
    "OutputRequest",
    "PendingReview",
    "ReleaseResult",
    "VerificationReport",
    "justify_request",
    "list_requests",
    "list_staged",
    "reject_output",
    "release_output",
    "request_output",
    "request_staged",
    "pending_reviews",
    "review_requests",
    "stage_output",
    "verify_all_releases",
    "verify_release",
]
