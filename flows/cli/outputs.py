"""`ehl outputs`: request, review, release, reject, list and verify outputs leaving the TRE.

Researchers request; IG officers named in the policy review, release or reject. The logic lives in
``analysis.disclosure.workflow``; these commands load the signed policy, call it and print.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import (
    WorkspaceOption,
    acting,
    console,
    handle_errors,
    open_workspace,
    print_outputs,
    progress,
)
from flows.cli.keys import read_passphrase, say
from ig_policies.errors import ConfigError, DisclosureBlocked, InputError, PolicyRefused
from ig_policies.policy import Role

if TYPE_CHECKING:
    from analysis.disclosure.workflow import OfficerSigner
    from flows.stages import PipelineContext
    from ig_policies.engine import PolicyEngine
    from ig_policies.workspace import Workspace

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="EHL_OFFICER_KEY",
        help="Your own IG officer private key (the one you sign policies with); default $EHL_OFFICER_KEY. "
        "The passphrase comes from $EHL_OFFICER_KEY_PASSPHRASE or is asked for.",
    ),
]


def _signer(key: str | None) -> OfficerSigner:
    """The acting officer's unlocked key: every decision on an output is signed with it."""
    from analysis.disclosure.workflow import OFFICER_KEY_PASSPHRASE_ENV, OfficerSigner

    if not key:
        raise ConfigError(
            "an IG officer decision must be signed with your own key, and none was given",
            hint="pass --key FILE or set EHL_OFFICER_KEY (the key you sign policies with)",
        )
    env = OFFICER_KEY_PASSPHRASE_ENV if os.environ.get(OFFICER_KEY_PASSPHRASE_ENV) else None
    return OfficerSigner.from_file(key, read_passphrase(env, "Passphrase of your officer key", False))


def _officer_decision(
    context: PipelineContext, key: str | None
) -> tuple[Workspace, PolicyEngine, str, OfficerSigner]:
    """What every officer decision starts with: the workspace, the engine, the acting officer's
    name (the logged-in account) and their unlocked key."""
    actor = context.acting(Role.IG_OFFICER)
    return context.workspace, context.engine(actor=actor), actor, _signer(key)


app = typer.Typer(
    no_args_is_help=True,
    help="Request outputs (researchers); review, release or reject them (IG officers); verify releases.",
)


@app.command("request")
@handle_errors
@acting
def request(
    name: Annotated[str, typer.Argument(help="The analysis output (or open request) to request.")],
    justification: Annotated[
        str, typer.Option("--justification", "-j", help="Why this output needs to leave the TRE.")
    ],
    context: PipelineContext,
) -> None:
    """Request an output an analysis prepared, or attach a justification to an open request NAME.

    The output is checked at once; its check report is printed and kept with the request.
    """
    from analysis.disclosure.outputs import load_output
    from analysis.disclosure.workflow import BLOCKED, justify_request, list_staged, staged_dir, submit_output

    ws, actor = context.workspace, context.acting(Role.RESEARCHER)
    engine = context.engine(actor=actor)
    if not justification.strip():
        raise InputError(
            "--justification", "the justification is empty", "say why this output needs to leave"
        )
    staged = list_staged(ws)
    if name in staged:
        with progress(f"The output gate is checking {name} against the output rules"):
            receipt = submit_output(
                ws, engine, actor, load_output(staged_dir(ws) / name), name, justification
            )
        say(receipt.report_text)
    else:
        # an open request of one's own, by id or name: the gate says if there is none
        try:
            request_id = justify_request(ws, engine, actor, name, justification)
        except InputError:
            raise InputError(
                name,
                "there is no prepared analysis output or open request with this name",
                ("prepared outputs: " + ", ".join(staged))
                if staged
                else "run the analysis first ('ehl analyse ...')",
            ) from None
        say(f"The justification of request {request_id} is replaced.")
        return
    print_outputs([("request", receipt.request_id), ("pending", ws.pending / receipt.request_id)])
    if receipt.status == BLOCKED:
        raise DisclosureBlocked(
            f"Request {receipt.request_id} is blocked by disclosure control ({receipt.summary}).",
            hint="change the output as the report says (coarser categories, more people per cell) and request it again",
        )


@app.command("review")
@handle_errors
@acting
def review(
    context: PipelineContext,
) -> None:
    """(IG officer) Show each pending request, its check report and what it could combine with."""
    from analysis.disclosure.workflow import list_requests, review_requests

    ws, actor = context.workspace, context.acting(Role.IG_OFFICER)
    engine = context.engine(actor=actor)
    reviews = review_requests(ws, engine, actor)
    blocked = list_requests(ws, "blocked")
    if blocked:
        say(
            f"{len(blocked)} request(s) were blocked by the automatic checks and cannot be released "
            "('ehl outputs list --status blocked'); reject them with a reason."
        )
    if not reviews:
        say("No output requests are waiting for review.")
        return
    for item in reviews:
        r = item.request
        say("=" * 78)
        say(f"Request {r.request_id}  ({r.kind.replace('_', ' ')})")
        say(f"Requested by {r.requested_by} at {r.requested_at}")
        say(f"Justification: {r.justification or '(none given)'}")
        say("")
        say(item.report_text.rstrip())
        say("")
        if item.combinable_with:
            say(f"Earlier releases from the same data ({r.source}) it could be combined with:")
            for e in item.combinable_with:
                say(f"  - {e.request_id}: {e.title} (released {e.released_at})")
        else:
            say(f"Nothing has been released from {r.source} before.")
        for f in item.differencing:
            say(f"  {f.line()}")
    say("=" * 78)
    say(
        f"{len(reviews)} request(s) pending. Release with 'ehl outputs release ID', send back with "
        "'ehl outputs request-changes ID --comments ...', reject with 'ehl outputs reject ID --reason ...' "
        "(each signed with your key: --key / EHL_OFFICER_KEY)."
    )


@app.command("release")
@handle_errors
@acting
def release(
    request_id: Annotated[str, typer.Argument(help="The request id (see 'ehl outputs review').")],
    context: PipelineContext,
    key: KeyOption = None,
) -> None:
    """(IG officer) Re-check, sign and release a pending request to outputs/released/.

    When the policy needs two reviews, the first officer's release records a signed approval and a
    second, different officer releases.
    """
    from analysis.disclosure.workflow import release_output

    ws, engine, actor, signer = _officer_decision(context, key)
    with progress(f"Re-checking and releasing {request_id}"):
        result = release_output(ws, engine, actor, request_id, signer)
    if not result.released:
        say(
            f"Your signed approval of {result.request_id} is recorded; {result.approvals_needed} more "
            "approval by a different IG officer is needed before it is released."
        )
        return
    say(f"Released {result.request_id}; the bundle passed its independent re-check.")
    print_outputs([("released", result.directory), *((f.name, f) for f in result.files)])


@app.command("reject")
@handle_errors
@acting
def reject(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="What must change, for the researcher.")],
    context: PipelineContext,
    key: KeyOption = None,
) -> None:
    """(IG officer) Reject a request, recording the reason (signed; kept in the audit log)."""
    from analysis.disclosure.workflow import reject_output

    ws, engine, actor, signer = _officer_decision(context, key)
    reject_output(ws, engine, actor, request_id, reason, signer)
    say(f"Rejected {request_id}.")


@app.command("request-changes")
@handle_errors
@acting
def request_changes(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    comments: Annotated[str, typer.Option("--comments", "-c", help="What the researcher should change.")],
    context: PipelineContext,
    key: KeyOption = None,
) -> None:
    """(IG officer) Send a request back to the researcher with comments (signed)."""
    from analysis.disclosure.workflow import request_changes as send_back

    ws, engine, actor, signer = _officer_decision(context, key)
    send_back(ws, engine, actor, request_id, comments, signer)
    say(f"Sent {request_id} back with your comments; the researcher can request it again.")


@app.command("grant-exception")
@handle_errors
@acting
def grant_exception(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    justification: Annotated[
        str, typer.Option("--justification", "-j", help="Why the output is safe despite its checks.")
    ],
    context: PipelineContext,
    key: KeyOption = None,
) -> None:
    """(IG officer) Grant a signed exception for a request whose checks say *review*."""
    from analysis.disclosure.workflow import grant_exception as grant

    ws, engine, actor, signer = _officer_decision(context, key)
    grant(ws, engine, actor, request_id, justification, signer)
    say(f"Exception granted for {request_id}; it can now be released ('ehl outputs release').")


@app.command("list")
@handle_errors
def list_(
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only pending, blocked, released, rejected or changes_requested requests."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """List output requests and their status (no data is shown)."""
    from rich.table import Table

    from analysis.disclosure.workflow import STATUSES, list_requests

    if status is not None and status not in STATUSES:
        raise InputError("--status", f"unknown status {status!r}", f"use one of {', '.join(STATUSES)}")
    try:
        requests = list_requests(open_workspace(workspace), status)
    except PermissionError:
        raise PolicyRefused(
            "officers_zone",
            "Output requests are kept where only the output gate writes and only IG officers read "
            "(outputs/pending/), so this account cannot list them.",
            hint="the id, status and check report of each of your requests were shown when you made it; "
            "ask an IG officer for the decision on one",
        ) from None
    if not requests:
        say("No output requests.")
        return
    table = Table("id", "kind", "status", "checks", "requested by", "decided by", "officer's comments")
    for r in requests:
        table.add_row(
            r.request_id, r.kind, r.status, r.summary, r.requested_by, r.decided_by or "-",
            r.decision_reason or "-",
        )  # fmt: skip
    console.print(table)


@app.command("verify")
@handle_errors
@acting
def verify(
    context: PipelineContext,
) -> None:
    """Re-check every released bundle: checksums, every published number, the bundle hash in the
    audit log's release entry and the officer's signed decision."""
    from analysis.disclosure.workflow import verify_all_releases
    from ig_policies.errors import TamperedError

    ws, engine = context.workspace, context.engine()
    reports = verify_all_releases(ws, engine.policy.outputs, engine)
    for report in reports:
        say(report.to_text().rstrip())
    failed = [r for r in reports if not r.ok]
    if any(f.rule.startswith("release_") for r in failed for f in r.findings):
        raise TamperedError(
            f"{len(failed)} of {len(reports)} released bundle(s) differ from what the IG officer released "
            f"or signed: {', '.join(r.path.name for r in failed)}.",
            hint="withdraw those outputs and tell the IG officer",
        )
    if failed:
        raise DisclosureBlocked(
            f"{len(failed)} of {len(reports)} released bundle(s) fail the re-check.",
            hint="withdraw those outputs and tell the IG officer",
        )
    say(f"All {len(reports)} released bundle(s) pass the independent re-check.")
