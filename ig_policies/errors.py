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


class DisclosureBlocked(EhlError):
    exit_code = EXIT_BLOCKED


EXIT_INTERRUPTED = 130  # the user pressed Ctrl-C


class EnvironmentProblem(EhlError):
    """The machine, not the data, stopped a step: a missing folder, no permission, a full disk.

    Made from an ``OSError`` by ``expected_error``, so it always names the path and says what to do.
    """

    exit_code = EXIT_BAD_INPUT


_OS_HINTS = {
    errno.ENOENT: "check that the path exists and is spelled correctly (is the workspace or share mounted?)",
    errno.ENOTDIR: "a folder is expected at this path; check the path",
    errno.EISDIR: "a file is expected at this path, not a folder; check the path",
    errno.EACCES: "ask the TRE administrator to give the account running ehl access to this path",
    errno.EPERM: "ask the TRE administrator to give the account running ehl access to this path",
    errno.EROFS: "this file system is read-only; point the workspace at a writable folder",
    errno.ENOSPC: "free disk space (or raise the quota) on this file system, then run the step again",
    errno.EDQUOT: "free disk space (or raise the quota) on this file system, then run the step again",
}


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
        where = (
            " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None) or "(no path given)"
        )
        problem = exc.strerror or str(exc) or type(exc).__name__
        hint = _OS_HINTS.get(exc.errno or -1, "check the path and the account's access to it, then run again")
        return EnvironmentProblem(f"{where}: {problem}", hint=hint)
    return None


def exit_code_for(exc: BaseException) -> int:
    """The exit code a command ends with after ``exc`` (see the ``EXIT_*`` constants)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    known = expected_error(exc)
    return known.exit_code if known is not None else EXIT_ERROR
