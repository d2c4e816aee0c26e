"""Charts of released estimates: one dot-and-whisker plot drawn from a *protected* table.

Disclosure control calls these with the table as it will be released (suppressed rows empty),
so a picture can never show a number the table withholds. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io

import pandas as pd

_RATIO_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)


def estimate_chart(
    table: pd.DataFrame,
    title: str,
    xlabel: str,
    reference: float | None = 1.0,
    log_scale: bool = False,
    label_column: str = "term",
) -> bytes:
    """PNG of each row's ``estimate`` with its ``ci_lower``–``ci_upper`` interval.

    Rows whose estimate is missing (withheld by disclosure control) are listed with the word
    "suppressed" instead of a point, so readers see that something was withheld.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table.reset_index(drop=True)
    labels = rows[label_column].astype(str).tolist()
    height = max(2.0, 0.35 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height), dpi=100)
    try:
        y = list(range(len(rows)))[::-1]
        for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
            est, lo, hi = r.get("estimate"), r.get("ci_lower"), r.get("ci_upper")
            if pd.isna(est):
                ax.text(
                    0.02,
                    yi,
                    "suppressed",
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=8,
                    color="grey",
                )
                continue
            if not (pd.isna(lo) or pd.isna(hi)):
                ax.plot([float(lo), float(hi)], [yi, yi], color="#1f4e79", linewidth=1.5)
            ax.plot([float(est)], [yi], "o", color="#1f4e79", markersize=5)
        if reference is not None:
            ax.axvline(reference, color="grey", linestyle="--", linewidth=1)
        if log_scale:
            from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

            ax.set_xscale("log")
            # plain numbers (0.5, 1, 2), not powers of ten: readers compare ratios with 1
            low, high = ax.get_xlim()
            ticks = [t for t in _RATIO_TICKS if low <= t <= high] or [1.0]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


__all__ = ["estimate_chart"]
