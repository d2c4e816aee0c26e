"""The registry of disclosure checks: every check has one signature and is found by its name.

``check(output, rules, context) -> list[Finding]``. Rules are the policy's ``outputs`` section
(``ig_policies.policy.OutputRules``), passed in, never read from a global. Checks run in registry
order for the kinds of output they apply to; a check may withhold items (``Finding.withheld``),
and later checks see what has been withheld so far in ``context.withheld`` (secondary suppression
protects what the threshold rule withheld). A new rule is added by registering one function; the
code that runs the checks and protects the output does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.disclosure.ledger import LedgerEntry
from analysis.disclosure.outputs import DisclosureOutput
from analysis.disclosure.report import Finding
from analysis.disclosure.suppression import Grid
from ig_policies.policy import OutputRules

#: The kinds of table every check of data (not of a chart) may apply to.
ALL_KINDS = ("frequency_table", "magnitude_table", "model_result")


@dataclass
class CheckContext:
    """What checks share while one output is checked."""

    earlier_releases: tuple[LedgerEntry, ...] = ()
    #: item key -> reason, for everything withheld so far
    withheld: dict[tuple[Any, ...], str] = field(default_factory=dict)
    grid: Grid | None = None
    #: for figures: the protected table and whether protection changed any published value
    protected: pd.DataFrame | None = None
    table_changed: bool = False


Check = Callable[[DisclosureOutput, OutputRules, CheckContext], list[Finding]]


@dataclass(frozen=True)
class RegisteredCheck:
    """One rule: its name, the output kinds it applies to, the function, and what it is for."""

    name: str
    kinds: frozenset[str]
    run: Check
    purpose: str


REGISTRY: dict[str, RegisteredCheck] = {}


def register(name: str, kinds: Iterable[str], purpose: str) -> Callable[[Check], Check]:
    """Add a check to the registry under ``name`` for the given output kinds."""

    def decorate(fn: Check) -> Check:
        if name in REGISTRY:
            raise ValueError(f"a disclosure check named {name!r} is already registered")
        REGISTRY[name] = RegisteredCheck(name, frozenset(kinds), fn, purpose)
        return fn

    return decorate


__all__ = ["ALL_KINDS", "REGISTRY", "Check", "CheckContext", "RegisteredCheck", "register"]
