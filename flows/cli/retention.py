"""`ehl retention enforce`: delete linked and analysis data once the policy's retention date arrives."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import acting, handle_errors
from flows.cli.keys import say
from ig_policies.policy import Role

if TYPE_CHECKING:
    from flows.stages import PipelineContext

app = typer.Typer(no_args_is_help=True, help="Enforce the policy's retention date.")


@app.command("enforce")
@handle_errors
@acting
def enforce(
    context: PipelineContext,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete the linked/ and analysis/ zones' data if the retention date has arrived (IG officers only)."""
    from ig_policies.retention import RETENTION_ZONES, enforce_retention

    ws, actor = context.workspace, context.acting(Role.IG_OFFICER)
    engine = context.engine(actor=actor, allow_expired=True)
    result = enforce_retention(engine, actor, dry_run=dry_run)
    size = f"{len(result.deleted)} item(s), {result.files} file(s), {result.bytes / 1e6:.1f} MB"
    if not result.due:
        say(
            f"Retention date {result.delete_by} not reached: nothing deleted. The {' and '.join(RETENTION_ZONES)} "
            f"zones hold {size}."
        )
    elif dry_run:
        say(f"Dry run: would delete {size} from the {' and '.join(RETENTION_ZONES)} zones:")
        for path in result.deleted:
            say(f"  {path.relative_to(ws.root)}")
    else:
        say(f"Deleted {size} from the {' and '.join(RETENTION_ZONES)} zones (recorded in the audit log).")
