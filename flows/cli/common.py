"""What every ``ehl`` subcommand shares: options, error handling, progress and the final summary."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ig_policies.errors import exit_code_for, expected_error
from ig_policies.workspace import Workspace

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

POLICY_ENV = "EHL_POLICY"

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        readable=False,
        help="Workspace directory (default: $EHL_WORKSPACE or ./workspace).",
    ),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", "-p", help="Signed policy YAML (default: $EHL_POLICY). Its .sig must sit beside it."
    ),
]
TrustStoreOption = Annotated[
    Path | None,
    typer.Option(
        "--trust-store",
        help="Trusted officer keys (default: $EHL_TRUST_STORE; there is no built-in default).",
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        "-s",
        help="Settings YAML: Spark, Prefect and every stage option (default: $EHL_SETTINGS or built-in "
        "defaults). This command's options override its keys.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from flows.stages import PipelineContext


def open_workspace(workspace: Path | None) -> Workspace:
    """The workspace as this machine's deployment opens it (its fixed root, its role groups), so
    opening it never resets a zone to the one-account modes, which would drop the setgid bit that
    gives a zone's files their readers' group; with no deployment file at all (a developer's
    synthetic workspace), the folder given."""
    from ig_policies.deployment import deployment_path, load_deployment

    if not deployment_path().exists():
        return Workspace.open(workspace)
    return load_deployment().open_workspace(workspace)


def policy_path(policy: Path | None) -> Path | None:
    """``--policy``, else ``$EHL_POLICY``; None if neither (a step that needs one then refuses)."""
    return policy or (Path(os.environ[POLICY_ENV]) if os.environ.get(POLICY_ENV) else None)


def command_context(
    workspace: Path | None = None,
    policy: Path | None = None,
    trust_store: Path | None = None,
    settings: Path | None = None,
    *,
    read_settings: bool = True,
) -> PipelineContext:
    """The stage context of one command: the workspace, the signed policy and the settings (``settings`` or ``$EHL_SETTINGS``; the defaults for a command that uses none, with
    ``read_settings=False``). The command applies its own options with ``with_overrides``.

    Who acts is the OS account running the command (``ig_policies.identity``), never a typed
    name; the machine's deployment fixes the workspace, the trust store and the policy, which the
    options may only repeat. A DEMO deployment is announced on stderr, once.

    A command always does its work (no resume) and starts Spark, if it needs it, with a spinner.
    """
    from flows.settings import Settings, load_settings
    from flows.stages import PipelineContext
    from ig_policies.deployment import load_deployment

    deployment = load_deployment()
    if deployment.demo:
        err_console.print(
            f"DEMO deployment ({deployment.source}): this account acts in all three roles; never for real data.",
            soft_wrap=True,
        )
    run_settings = load_settings(settings) if read_settings else Settings()
    context = PipelineContext(
        deployment.open_workspace(workspace),
        policy_path(policy),
        settings=run_settings,
        trust_store=trust_store,
        resume=False,
        spark_factory=start_spark,
    )
    context._started["deployment"] = deployment
    return context


_CONTEXT_OPTIONS = {
    "workspace": WorkspaceOption,
    "policy": PolicyOption,
    "trust_store": TrustStoreOption,
}


def acting(fn: F | None = None, *, settings: bool = False) -> Any:
    """Give a command the ``--workspace``, ``--policy`` and ``--trust-store`` options
    (and ``--settings`` with ``settings=True``) and call it with ``context=``, the
    :func:`command_context` they describe. The command applies its own options to it with
    ``context.with_overrides({...})``, so each option is a settings key.
    """
    if fn is None:
        return functools.partial(acting, settings=settings)
    options = {**_CONTEXT_OPTIONS, **({"settings": SettingsOption} if settings else {})}
    signature = inspect.signature(fn)
    # typer needs the command's annotations evaluated; ``context`` is ours, typed only for readers
    hints = typing.get_type_hints(fn, localns={"PipelineContext": Any}, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "context"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        for name, annotation in options.items()
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        where = {name: kwargs.pop(name, None) for name in options}
        group = next((a for a in [*args, *kwargs.values()] if isinstance(a, click.Context)), None)
        if group is not None and group.invoked_subcommand is not None:
            return fn(*args, context=None, **kwargs)  # a group's callback before its subcommand: no work
        return fn(*args, context=command_context(**where, read_settings=settings), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added], return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **options, "return": None}
    return wrapper


def start_spark(settings: Any):
    """The pipeline's Spark session from ``settings.spark``, with a spinner while the JVM starts."""
    with progress("Starting Spark"):
        from flows.spark_session import build_spark_session

        return build_spark_session(settings.spark)


def handle_errors(fn: F) -> F:
    """Turn expected failures into a plain message and their exit code, never a traceback.

    The mapping from error to exit code is ``ig_policies.errors.expected_error`` (an environment
    problem such as a missing folder or a full disk exits 4 naming the path); anything else is a
    bug, reported in one line with how to see the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            err_console.print("Interrupted; nothing partial was written.")
            raise typer.Exit(exit_code_for(exc)) from None
        except Exception as exc:
            known = expected_error(exc)
            if known is not None:
                err_console.print(f"[bold red]Error:[/] {escape(str(known))}", markup=True, soft_wrap=True)
                raise typer.Exit(known.exit_code) from None
            if os.environ.get("EHL_DEBUG"):
                raise
            err_console.print(
                f"[bold red]Unexpected error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
                "Set EHL_DEBUG=1 to see the full traceback, and report it with the command you ran.",
                soft_wrap=True,
            )
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper  # type: ignore[return-value]


_drawing: list[Callable[..., None]] = []  # the progress bar on screen, if any (there is one at most)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
    """A rich progress bar (or spinner when ``total`` is unknown); yields ``advance(n=1, description=None)``.

    Inside another bar (a stage starting Spark while its command's bar is drawn) it shows its
    description on that bar instead of drawing a second one.
    """
    if _drawing:
        outer = _drawing[-1]
        outer(0, description=description)
        yield outer
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1, description: str | None = None) -> None:
            kwargs: dict[str, Any] = {"advance": n}
            if description:
                kwargs["description"] = description
            bar.update(task, **kwargs)

        _drawing.append(advance)
        try:
            yield advance
        finally:
            _drawing.pop()
        if total is not None:
            bar.update(task, completed=total)


def print_outputs(outputs: Iterable[tuple[str, Path | str]]) -> None:
    """The last lines of a command: what was written where."""
    for label, path in outputs:
        console.print(f"{label}: {path}", soft_wrap=True)


def run_analysis_command(
    context: PipelineContext, analysis: str, options: Mapping[str, Any], description: str
) -> Any:
    """Run ``analysis`` through its stage with ``options`` (``analyses.<analysis>`` keys) applied to
    the settings; returns the analysis's result for the command to print."""
    from flows.stages import run_analysis

    configured = context.with_overrides({"analyses": {analysis: options}})
    with progress(description):
        return run_analysis(configured, analysis).result


def report_requests(result: Any, hint: str) -> None:
    """What an analysis requested and where; blocked outputs end the command with exit code 6."""
    from ig_policies.errors import DisclosureBlocked

    print_outputs(
        [
            (f"{status} {name}", f"outputs/pending/{request_id}")
            for name, request_id, status in result.requests
        ]
    )
    if result.blocked:
        raise DisclosureBlocked(
            f"Disclosure control blocked {len(result.blocked)} of {len(result.requests)} outputs: "
            + ", ".join(result.blocked)
            + ". The others are pending review by an IG officer.",
            hint=hint,
        )
