"""What the checks say: one finding per cell or item, in the words an output checker would use.

A finding whose item is *withheld* (suppressed) no longer stops the output: the released version
simply does not contain it. The output's outcome is the worst outcome among the findings that are
not resolved by withholding, so an output with one suppressed cell can still pass, while a
regression with too few residual degrees of freedom cannot.

Reasons never quote the value of a withheld cell, so the report itself can travel with the release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd


class Outcome(Enum):
    """Pass, review (an IG officer must look), fail (cannot be released as it is). Worst wins."""

    PASS = "pass"
    REVIEW = "review"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        return {"pass": 0, "review": 1, "fail": 2}[self.value]

    @staticmethod
    def worst(outcomes: list[Outcome] | tuple[Outcome, ...]) -> Outcome:
        return max(outcomes, key=lambda o: o.severity, default=Outcome.PASS)


@dataclass(frozen=True)
class Finding:
    """One rule applied to one item (a cell, a coefficient, the whole output)."""

    rule: str
    item: str
    outcome: Outcome
    reason: str
    #: the item is withheld from the released output, which resolves this finding
    withheld: bool = False
    #: machine key of the item (cell key tuple or coefficient row) when it is not the whole output
    key: tuple[Any, ...] | None = None

    @property
    def blocks(self) -> bool:
        """Whether this finding stops the output being released as it stands."""
        return not self.withheld and self.outcome is not Outcome.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "item": self.item,
            "outcome": self.outcome.value,
            "action": "withheld" if self.withheld else ("none" if self.outcome is Outcome.PASS else "blocks"),
            "reason": self.reason,
        }

    def line(self) -> str:
        tag = "WITHHELD" if self.withheld else self.outcome.value.upper()
        return f"[{tag:8}] {self.rule}: {self.item}: {self.reason}"


@dataclass(frozen=True)
class CheckReport:
    """All findings for one output, the overall outcome and the protected table that would be released."""

    kind: str
    title: str
    source: str
    findings: tuple[Finding, ...]
    #: the table as it would be released (suppressed and rounded); None when nothing is releasable
    protected: pd.DataFrame | None = None
    #: the figure drawn from the protected table, for figures
    png: bytes | None = None
    #: model-level figures released alongside a model (n rounded, residual df, fit statistics)
    model_summary: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return Outcome.worst([f.outcome for f in self.findings if f.blocks])

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocks)

    @property
    def withheld(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.withheld)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "source": self.source,
            "outcome": self.outcome.value,
            "items_withheld": len({f.key for f in self.withheld}),
            "findings": [f.to_dict() for f in self.findings],
            "model_summary": self.model_summary,
        }

    def summary(self) -> str:
        """One plain-English sentence for lists."""
        n_withheld = len({f.key for f in self.withheld})
        withheld = f"; {n_withheld} item(s) withheld" if n_withheld else ""
        if self.outcome is Outcome.FAIL:
            rules = sorted({f.rule for f in self.blocking if f.outcome is Outcome.FAIL})
            return f"FAIL: cannot be released as it is ({', '.join(rules)}){withheld}"
        if self.outcome is Outcome.REVIEW:
            rules = sorted({f.rule for f in self.blocking})
            return f"REVIEW: an IG officer must look at {', '.join(rules)}{withheld}"
        return f"PASS{withheld}"

    def to_text(self) -> str:
        """The report as an output checker would read it: verdict first, then each finding."""
        lines = [
            f"Output: {self.title} ({self.kind.replace('_', ' ')}, from {self.source})",
            f"Outcome: {self.summary()}",
            "",
        ]
        order = {Outcome.FAIL: 0, Outcome.REVIEW: 1, Outcome.PASS: 2}
        for f in sorted(self.findings, key=lambda f: (f.withheld, order[f.outcome])):
            lines.append(f.line())
        return "\n".join(lines) + "\n"
