"""`ehl audit`: read and verify the workspace's signed audit log, and run its writer service.

``show`` and ``verify`` need only the writer's public key and anchor (readable by every role);
``serve`` is run by the audit writer's own account, the only one holding the signing key.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import WorkspaceOption, console, err_console, handle_errors
from flows.cli.keys import say
from ig_policies.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help="Show and verify the audit log of a workspace.")


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class DecisionFilter(StrEnum):
    STARTED = "started"
    ALLOWED = "allowed"
    REFUSED = "refused"
    FAILED = "failed"


def _when(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a date or time", hint="use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
        ) from None
    if len(text) == 10 and option == "--until":
        when += dt.timedelta(days=1) - dt.timedelta(microseconds=1)  # a whole day
    return when


@app.command("show")
@handle_errors
def show(
    workspace: WorkspaceOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this date/time (UTC, inclusive).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this date/time (UTC, inclusive).")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only entries by this user.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. pseudonymise.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Only this policy id (or policy hash prefix).")
    ] = None,
    decision: Annotated[
        DecisionFilter | None, typer.Option("--decision", help="started, allowed, refused or failed.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv or json.")
    ] = OutputFormat.TABLE,
) -> None:
    """List audit entries, filtered by time, actor, action, policy and decision."""
    from rich.table import Table

    from ig_policies.audit import entries_to_csv, filter_entries
    from ig_policies.deployment import load_deployment

    deployment = load_deployment()
    log = deployment.audit_log(deployment.open_workspace(workspace))
    report = log.verify()
    if not report.ok:
        err_console.print("[bold red]Warning:[/] the audit log fails verification; run 'ehl audit verify'.")
    unfinished = set(report.unfinished)
    entries = filter_entries(
        log.entries(),
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        actor=actor,
        action=action,
        policy=policy,
        decision=decision.value if decision else None,
    )
    for e in entries:
        if e.get("seq") in unfinished:
            e["never_finished"] = True  # a flag of this listing, not part of the signed entry
    if output_format == OutputFormat.JSON:
        print(json.dumps(entries, indent=2, sort_keys=True, default=str))
        return
    if output_format == OutputFormat.CSV:
        print(entries_to_csv(entries), end="")
        return
    table = Table(title=f"{len(entries)} audit entries", show_lines=False)
    for column in (
        "#",
        "time (UTC)",
        "account",
        "actor",
        "role",
        "action",
        "decision",
        "rule / reason",
        "rows",
    ):
        table.add_column(column, overflow="fold")
    for e in entries:
        why = " ".join(x for x in (e.get("rule") or "", e.get("reason") or "") if x)
        rows = ", ".join(f"{k}={v}" for k, v in (e.get("counts") or {}).items())
        decided = e.get("decision") or ""
        if e.get("never_finished"):
            decided = "started and never finished"
        elif e.get("started_seq"):
            decided += f" (started #{e['started_seq']})"
        table.add_row(
            str(e.get("seq")), str(e.get("time", ""))[:19].replace("T", " "), e.get("account") or "",
            e.get("actor") or "", e.get("role") or "", e.get("action") or "", decided, why, rows,
        )  # fmt: skip
    console.print(table)
    for note in report.notes:
        err_console.print(f"Note: {note}")


@app.command("verify")
@handle_errors
def verify(
    workspace: WorkspaceOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="SEQ:HASH noted from an earlier verify: also check that this entry is still there, unchanged.",
        ),
    ] = None,
) -> None:
    """Check every signature, the hash chain and the writer's anchor; exit 5 and say what changed on tampering.

    Needs only the writer's public key and anchor, no secret. The anchor outside the workspace is
    always compared, so a deleted, truncated or rolled-back log is reported without ``--anchor``.
    """
    from ig_policies.deployment import load_deployment

    deployment = load_deployment()
    log = deployment.audit_log(deployment.open_workspace(workspace))
    anchor_pair = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ConfigError(
                f"--anchor {anchor!r} is not SEQ:HASH", hint="copy it from an earlier 'ehl audit verify'"
            )
        anchor_pair = (int(seq), digest)
    report = log.verify_or_raise(anchor=anchor_pair)
    say(report.summary())
    for note in report.notes:
        say(f"Note: {note}")
    say(
        f"For an extra check, note this outside the TRE and pass it later as --anchor: "
        f"{report.entries}:{report.head_hash}"
    )


@app.command("serve")
@handle_errors
def serve(
    key: Annotated[
        Path,
        typer.Option("--key", help="The writer's Ed25519 signing key (PEM, mode 0600, this account only)."),
    ],
    anchor: Annotated[
        Path,
        typer.Option(
            "--anchor", help="The anchor file, in the writer's state directory outside the workspace."
        ),
    ],
    socket_path: Annotated[
        Path, typer.Option("--socket", help="The Unix socket to listen on (created with mode 0660).")
    ],
    workspace: WorkspaceOption = None,
    group: Annotated[
        str | None, typer.Option("--group", help="The OS group (the role accounts) allowed to connect.")
    ] = None,
) -> None:
    """Run the audit writer service: sign and append entries sent over a Unix socket, keep the anchor.

    Run as the audit writer's own account. Each caller is identified by the kernel (SO_PEERCRED) and
    its account is stamped into the entry. Stops on Ctrl-C or SIGTERM.
    """
    from ig_policies.audit import check_anchor_outside, load_signing_key
    from ig_policies.audit_writer import AuditWriter
    from ig_policies.audit_writer import serve as serve_socket
    from ig_policies.workspace import Workspace

    ws = Workspace.open(workspace, create=False)  # the writer creates no zone and changes none
    check_anchor_outside(ws, anchor)
    signing_key = load_signing_key(key)
    writer = AuditWriter(ws.root, ws.audit, signing_key, anchor)
    serve_socket(
        writer,
        socket_path,
        group=group,
        ready=lambda: say(f"Audit writer listening on {socket_path} for workspace {ws.root}"),
    )
