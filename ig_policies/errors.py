"""Errors that end a command with a plain-English message and a meaningful exit code.

Every refusal or bad-input error says what is wrong and what to do about it; the CLI prints the
message (never a traceback) and exits with the error's code, so scripts can tell them apart.
"""

from __future__ import annotations

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
