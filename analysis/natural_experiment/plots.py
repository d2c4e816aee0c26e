"""The event-study chart, drawn from the table exactly as disclosure control will release it.

The render function receives the *protected* table (suppressed event times are empty) so the
picture can never show a number the table does not.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from analysis.vocabulary import MEASURE_LABELS


def outcome_of(term: str) -> str:
    """Event-study terms are ``<outcome>:e<event time>``."""
    return term.split(":", 1)[0]


def render_event_study(table: pd.DataFrame, comparison: str = "people not yet enrolled") -> bytes:
    """One panel per outcome: effect on monthly count per person by months since enrolment, 95% CI.

    ``comparison`` names who each enrolment cohort was compared with (in the title).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    outcomes = list(dict.fromkeys(outcome_of(t) for t in table["term"]))
    n = max(1, len(outcomes))
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(6.0 * cols, 3.4 * rows), dpi=110)
    FigureCanvasAgg(fig)
    for k, outcome in enumerate(outcomes):
        ax = fig.add_subplot(rows, cols, k + 1)
        part = table[table["term"].map(outcome_of) == outcome]
        e = pd.to_numeric(part["event_time"], errors="coerce").to_numpy(dtype=float)
        est = pd.to_numeric(part["estimate"], errors="coerce").to_numpy(dtype=float)
        lo = pd.to_numeric(part["ci_lower"], errors="coerce").to_numpy(dtype=float)
        hi = pd.to_numeric(part["ci_upper"], errors="coerce").to_numpy(dtype=float)
        shown = np.isfinite(est)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.axvline(-0.5, color="0.3", lw=0.8, ls="--")
        ax.fill_between(e[shown], lo[shown], hi[shown], color="tab:blue", alpha=0.18, lw=0)
        ax.plot(e[shown], est[shown], "o-", color="tab:blue", ms=2.5, lw=1)
        ax.set_title(MEASURE_LABELS.get(outcome, outcome), fontsize=10)
        ax.set_xlabel("months since enrolment")
        ax.set_ylabel("change per person-month")
        ax.tick_params(labelsize=8)
    fig.suptitle(f"Health-service use around enrolment (compared with {comparison}, 95% CI)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
