"""`ehl gate serve`: run the output gate, the one writer of outputs/pending/, under its own account.

The researcher's ``ehl outputs request`` (and every analysis) sends each output's bytes to it over a
Unix socket; the gate learns the caller's account from the kernel, runs disclosure control, writes
and signs the request, and audits it with the researcher as the actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import WorkspaceOption, handle_errors
from flows.cli.keys import say

app = typer.Typer(no_args_is_help=True, help="Run the output gate service (its own OS account).")


@app.command("serve")
@handle_errors
def serve(
    key: Annotated[
        Path,
        typer.Option("--key", help="The gate's Ed25519 signing key (PEM, mode 0600, this account only)."),
    ],
    socket_path: Annotated[
        Path, typer.Option("--socket", help="The Unix socket to listen on (created with mode 0660).")
    ],
    workspace: WorkspaceOption = None,
    group: Annotated[
        str | None, typer.Option("--group", help="The OS group (the researchers) allowed to connect.")
    ] = None,
) -> None:
    """Run the output gate: check and store, signed, each output a researcher sends over its socket.

    Run as the gate's own account (the deployment names it: gate.account), the owner of
    outputs/pending/. Each caller is identified by the kernel (SO_PEERCRED) and must be a
    researcher named by the deployed policy and in the researchers' group. Stops on Ctrl-C or SIGTERM.
    """
    from analysis.disclosure.gate import GateService
    from analysis.disclosure.gate import serve as serve_socket
    from ig_policies.deployment import load_deployment
    from ig_policies.gate_keys import load_gate_key

    deployment = load_deployment()
    ws = deployment.open_workspace(workspace)
    service = GateService(deployment, ws, load_gate_key(key))
    serve_socket(
        service,
        socket_path,
        group=group,
        ready=lambda: say(f"Output gate listening on {socket_path} for workspace {ws.root}"),
    )
