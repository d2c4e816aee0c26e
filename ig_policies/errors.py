"""Errors that end a command with a plain-English message and a meaningful exit code.

Every refusal or bad-input error says what is wrong and what to do about it; the CLI prints the
message (never a traceback) and exits with the error's code, so scripts can tell them apart.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3  # the policy engine refused: no valid policy, wrong role, not permitted ...
EXIT_BAD_INPUT = 4  # an input file or config cannot be used as it is
EXIT_TAMPERED = 5  # the audit log (or a signed file) has been altered
EXIT_BLOCKED = 6  # disclosure control blocked an output


class EhlError(Exception):
    """Base of all expected failures. ``hint`` tells the user what to do next."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nWhat to do: {self.hint}"


class PolicyRefused(EhlError):
    """The policy engine refused an action. ``rule`` names the rule that refused it."""

    exit_code = EXIT_REFUSED

    def __init__(self, rule: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.rule = rule

    def __str__(self) -> str:
        text = f"Refused by rule '{self.rule}': {self.message}"
        return text if not self.hint else f"{text}\nWhat to do: {self.hint}"


class InputError(EhlError):
    """An input file cannot be used. Names the file and, where known, the row and column."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        path: str,
        problem: str,
        hint: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ):
        where = path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}", hint)
        self.path, self.row, self.column, self.problem = path, row, column, problem


class ConfigError(EhlError):
    """A YAML config (policy, dataset, settings) is invalid; the message names the file and key."""

    exit_code = EXIT_BAD_INPUT


class TamperedError(EhlError):
    exit_code = EXIT_TAMPERED


class AuditUnavailable(EhlError):
    """The audit writer could not record an entry (not running, refused, disk full, ...).

    Nothing may be committed without its audit entry, so the step stops here. Exit code 4, like an
    environment problem: something outside the data has to be fixed before the run can go on.
    """

    exit_code = EXIT_BAD_INPUT


class DisclosureBlocked(EhlError):
    exit_code = EXIT_BLOCKED


EXIT_INTERRUPTED = 130  # the user pressed Ctrl-C


# --------------------------------------------------------------------------------------------
# Problems of the machine, not of the data: a folder that cannot be written, a full disk


class EnvironmentProblem(EhlError):
    """The operating system refused to read or write a path (permissions, full disk, read-only).

    Not a fault of the data or the command: the message names the path and the fix is for
    whoever runs the machine (the data processor's account, the TRE administrator). Exit code 4,
    like bad input, because the run cannot go on until something outside the code changes.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, problem: str, hint: str):
        super().__init__(f"{path}: {problem}", hint)
        self.path, self.problem = path, problem


_ADMIN = "ask the TRE administrator if you cannot change it yourself"


def environment_problem(
    exc: OSError, path: str | None = None, doing: str = "use", account: str = "the data processor's account"
) -> EnvironmentProblem:
    """The plain-English ``EnvironmentProblem`` for an ``OSError`` (for any handler to reuse).

    ``doing`` is the verb of what was attempted ("read", "write", "use"); ``path`` overrides the
    path the error carries; ``account`` is whose access the fix is about. Unknown errors keep the operating system's own words.
    """

    where = path or exc.filename or "(unknown path)"
    where = str(where)
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return EnvironmentProblem(
            where,
            f"permission denied: {account} may not {doing} this path.",
            hint=(
                f"make the folder (or file) readable and writable by {account}, "
                f"then run the command again; {_ADMIN}."
            ),
        )
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return EnvironmentProblem(
            where,
            "the disk is full (or the account's disk quota is used up); nothing partial was kept.",
            hint=f"free disk space on the volume holding this path, then run the command again; {_ADMIN}.",
        )
    if code == errno.EROFS:
        return EnvironmentProblem(
            where,
            "the file system is read-only, so nothing can be written here.",
            hint=f"use a workspace on a writable volume, or have the volume mounted writable; {_ADMIN}.",
        )
    if code == errno.ENOENT:
        return EnvironmentProblem(
            where,
            "the path does not exist (a folder may have been moved or removed while the command ran).",
            hint="check that the workspace folders exist and are where the settings say, then run again.",
        )
    if code in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return EnvironmentProblem(
            where,
            "a file is where a folder should be, or a folder where a file should be.",
            hint="move the unexpected file or folder out of the workspace, then run the command again.",
        )
    if code in (errno.EMFILE, errno.ENFILE):
        return EnvironmentProblem(
            where,
            "the system has too many files open.",
            hint=f"close other programs or raise the open-file limit, then run the command again; {_ADMIN}.",
        )
    return EnvironmentProblem(
        where,
        f"the operating system could not {doing} this path ({exc.strerror or type(exc).__name__}).",
        hint=f"check the disk and the folder's permissions, then run the command again; {_ADMIN}.",
    )


def expected_error(exc: BaseException) -> EhlError | None:
    """``exc`` as an expected failure with a plain message and exit code, or None if it is a bug.

    The one mapping from an error to what the user sees, shared by every ``ehl`` command and the
    flows they start: ``EhlError`` as it is; an ``OSError`` (the environment) as
    ``EnvironmentProblem`` naming the path; a missing master secret as a ``ConfigError``.
    """
    from ig_policies.master_secret import MasterSecretError

    if isinstance(exc, EhlError):
        return exc
    if isinstance(exc, MasterSecretError):
        return ConfigError(str(exc), hint="the data processor provides the master secret")
    if isinstance(exc, OSError):
        return environment_problem(exc, account="the account running this command")
    return None


def exit_code_for(exc: BaseException) -> int:
    """The exit code a command ends with after ``exc`` (see the ``EXIT_*`` constants)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    known = expected_error(exc)
    return known.exit_code if known is not None else EXIT_ERROR
