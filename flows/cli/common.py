"""What every ``ehl`` subcommand shares: options, error handling, progress and the final summary."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ig_policies.errors import EXIT_ERROR, EhlError
from ig_policies.workspace import Workspace

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

USER_ENV = "EHL_USER"
POLICY_ENV = "EHL_POLICY"

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: $EHL_WORKSPACE or ./workspace)."),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", "-p", help="Signed policy YAML (default: $EHL_POLICY). Its .sig must sit beside it."
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user", "-u", help="Who is acting, as named in the policy (default: $EHL_USER or your login)."
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def current_user(user: str | None) -> str:
    return user or os.environ.get(USER_ENV) or getpass.getuser()


def open_workspace(workspace: Path | None) -> Workspace:
    return Workspace.open(workspace)


def policy_path(policy: Path | None) -> Path:
    chosen = policy or (Path(os.environ[POLICY_ENV]) if os.environ.get(POLICY_ENV) else None)
    if chosen is None:
        raise EhlError(
            "No policy given: every step needs the signed policy it runs under.",
            hint="pass --policy FILE or set EHL_POLICY (the demo uses ig_policies/configs/demo/policy.yaml).",
        )
    return chosen


def load_engine(
    workspace: Workspace, policy: Path | None, trust_store: Path | None, actor: str, **options: Any
):
    """The policy engine for a command: the signed policy from ``--policy``/``$EHL_POLICY``, verified.

    ``options`` go to ``PolicyEngine.load`` (e.g. ``master_secret``, ``allow_expired``).
    """
    from ig_policies.engine import PolicyEngine

    return PolicyEngine.load(policy_path(policy), workspace, trust_store=trust_store, actor=actor, **options)


def load_run_settings(path: Path | None = None):
    """The settings file (``path`` or ``$EHL_SETTINGS``, else defaults) as a command sees it: an
    invalid file is a configuration error naming the file and key, not a traceback."""
    from flows.settings import SettingsError, load_settings
    from ig_policies.errors import ConfigError

    try:
        return load_settings(path)
    except SettingsError as exc:
        raise ConfigError(str(exc), hint="fix the settings file named above") from None


def require_master_secret():
    """The service's master secret from the environment, for commands that derive keys from it."""
    from ig_policies.errors import ConfigError
    from ig_policies.master_secret import MasterSecretError, load_master_secret

    try:
        return load_master_secret()
    except MasterSecretError as exc:
        raise ConfigError(str(exc), hint="the data processor provides the master secret") from None


def start_spark(settings: Any):
    """The pipeline's Spark session from ``settings.spark``, with a spinner while the JVM starts."""
    with progress("Starting Spark"):
        from flows.spark_session import build_spark_session

        return build_spark_session(settings.spark)


def handle_errors(fn: F) -> F:
    """Turn expected failures into a plain message and the error's exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EhlError as exc:
            err_console.print(f"[bold red]Error:[/] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted; nothing partial was written.")
            raise typer.Exit(130) from None
        except Exception as exc:  # an unexpected failure: still one readable line first
            if os.environ.get("EHL_DEBUG"):
                raise
            err_console.print(
                f"[bold red]Unexpected error:[/] {type(exc).__name__}: {exc}\n"
                "Set EHL_DEBUG=1 to see the full traceback, and report it with the command you ran.",
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
    """A rich progress bar (or spinner when ``total`` is unknown); yields ``advance(n=1, description=None)``."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1, description: str | None = None) -> None:
            kwargs: dict[str, Any] = {"advance": n}
            if description:
                kwargs["description"] = description
            bar.update(task, **kwargs)

        yield advance
        if total is not None:
            bar.update(task, completed=total)


def print_outputs(outputs: Iterable[tuple[str, Path | str]]) -> None:
    """The last lines of a command: what was written where."""
    for label, path in outputs:
        console.print(f"{label}: {path}", soft_wrap=True)
