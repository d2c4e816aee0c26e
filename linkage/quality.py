"""Linkage quality: whom the linkage finds, whom it misses, and (on synthetic data) how accurate it is.

Missed links are rarely random: people whose names are recorded inconsistently, who move often or
lack an NHS number on the programme's form are linked less often, and any analysis of linked data
inherits that bias. So the report breaks match rates down by age band, sex, ethnicity, IMD
quintile and programme and says in plain words whether they differ. Evaluation against the
synthetic truth measures precision, recall and F1 on the truth in research pseudonyms
(``linkage.identifiable.truth``, which refuses a workspace without ``truth/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.vocabulary import AGE_BANDS
from ig_policies.errors import InputError
from ig_policies.workspace import Workspace, make_zone_folder, write_json, write_parquet, write_text
from linkage.linkage_config import LinkageConfig, default_linkage_config

GROUPS = ("programme", "age_band", "sex", "ethnicity", "imd_quintile")
UNKNOWN = "unknown"
MATCH_RATE_COLUMNS = ("group", "level", "clients", "matched", "match_rate")
#: a group whose match rates span more than this many percentage points is called out
NOTABLE_GAP_POINTS = 5.0


# --------------------------------------------------------------------------------------------
# Match rates by group


def _age_band(age: float) -> str:
    if pd.isna(age):
        return UNKNOWN
    for label, low, high in AGE_BANDS:
        if low <= age <= high:
            return label
    return UNKNOWN


def client_groups(workspace: Workspace, config: LinkageConfig | None = None) -> pd.DataFrame:
    """One row per client: ``client_pseudonym`` and the report's group columns (no tokens)."""
    config = config or default_linkage_config()
    path = workspace.root / config.left.path
    import pyarrow.dataset as pads

    present = set(pads.dataset(str(path), format="parquet").schema.names)
    wanted = [config.left.id_column, *[c for c in config.group_columns if c in present]]
    frame = pd.read_parquet(path, columns=wanted).rename(columns={config.left.id_column: "client_pseudonym"})
    out = pd.DataFrame({"client_pseudonym": frame["client_pseudonym"].astype(str)})
    for column in ("programme", "sex", "ethnicity"):
        out[column] = frame[column].astype("string").fillna(UNKNOWN) if column in frame else UNKNOWN
    if "year_of_birth" in frame and "enrolment_date" in frame:
        age = pd.to_datetime(frame["enrolment_date"], errors="coerce").dt.year - pd.to_numeric(
            frame["year_of_birth"], errors="coerce"
        )
        out["age_band"] = age.map(_age_band)
    else:
        out["age_band"] = UNKNOWN
    out["imd_quintile"] = UNKNOWN
    lookup = workspace.reference / "lsoa_lookup.csv"
    if "lsoa21cd" in frame and lookup.exists():
        imd = pd.read_csv(lookup, usecols=["lsoa21cd", "imd_decile"]).drop_duplicates("lsoa21cd")
        decile = frame["lsoa21cd"].map(imd.set_index("lsoa21cd")["imd_decile"])
        quintile = ((pd.to_numeric(decile, errors="coerce") + 1) // 2).astype("Int64")
        out["imd_quintile"] = quintile.map(lambda q: UNKNOWN if pd.isna(q) else f"Q{int(q)}")
    return out


def match_rates(links: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Clients, matched clients and match rate overall and for each level of each group."""
    joined = links[["client_pseudonym", "match_status"]].merge(groups, on="client_pseudonym", how="left")
    joined["is_matched"] = joined["match_status"].eq("matched")
    rows = [("overall", "all", len(joined), int(joined["is_matched"].sum()))]
    for group in GROUPS:
        if group not in joined:
            continue
        by = joined.groupby(joined[group].astype("string").fillna(UNKNOWN), sort=True)["is_matched"]
        rows.extend(
            (group, str(level), int(n), int(m))
            for level, n, m in zip(by.size().index, by.size(), by.sum(), strict=True)
        )
    out = pd.DataFrame(rows, columns=["group", "level", "clients", "matched"])
    out["match_rate"] = np.where(out["clients"] > 0, out["matched"] / out["clients"].clip(lower=1), np.nan)
    return out[list(MATCH_RATE_COLUMNS)]


@dataclass(frozen=True)
class GroupDifference:
    group: str
    lowest: str
    lowest_rate: float
    highest: str
    highest_rate: float
    p_value: float

    @property
    def gap_points(self) -> float:
        return 100 * (self.highest_rate - self.lowest_rate)


def group_differences(rates: pd.DataFrame) -> list[GroupDifference]:
    """For each group: the lowest and highest match rate and a chi-squared test of no difference."""
    from scipy.stats import chi2_contingency

    found = []
    for group, part in rates[rates["group"] != "overall"].groupby("group", sort=False):
        known = part[(part["level"] != UNKNOWN) & (part["clients"] > 0)]
        if len(known) < 2:
            continue
        table = np.column_stack([known["matched"], known["clients"] - known["matched"]])
        p_value = 1.0 if (table.sum(axis=0) == 0).any() else float(chi2_contingency(table)[1])
        lo = known.loc[known["match_rate"].idxmin()]
        hi = known.loc[known["match_rate"].idxmax()]
        found.append(
            GroupDifference(
                str(group),
                str(lo["level"]),
                float(lo["match_rate"]),
                str(hi["level"]),
                float(hi["match_rate"]),
                p_value,
            )
        )
    return found


def verdict(summary: dict[str, Any], rates: pd.DataFrame) -> list[str]:
    """A few plain-English sentences a data manager can act on."""
    clients = int(summary.get("clients", 0))
    matched = int(summary.get("matched", 0))
    lines = []
    rate = matched / clients if clients else 0.0
    lines.append(
        f"{matched:,} of {clients:,} client records ({100 * rate:.1f}%) were linked to a health record; "
        f"{summary.get('ambiguous', 0):,} had two near-equal candidates and {summary.get('clerical_review_pairs', 0):,} "
        "candidate pairs await clerical review."
    )
    if clients and rate < 0.8:
        lines.append(
            "Fewer than 80% of clients linked: check that both extracts cover the same population and that "
            "names, dates of birth and postcodes were standardised the same way before pseudonymisation."
        )
    notable = [d for d in group_differences(rates) if d.gap_points >= NOTABLE_GAP_POINTS and d.p_value < 0.05]
    if notable:
        for d in notable:
            lines.append(
                f"Match rates differ by {d.group.replace('_', ' ')}: {100 * d.lowest_rate:.1f}% for {d.lowest} "
                f"against {100 * d.highest_rate:.1f}% for {d.highest} (chi-squared p = {d.p_value:.2g}). "
                "Analyses of linked data under-represent the lower group; weight by the inverse probability "
                "of linkage or report the difference."
            )
    else:
        lines.append(
            f"No group's match rate differs from another's by {NOTABLE_GAP_POINTS:.0f} percentage points or more "
            "with statistical support, so missed links look unrelated to age, sex, ethnicity, deprivation and programme."
        )
    return lines


# --------------------------------------------------------------------------------------------
# The report


def _linked_file(workspace: Workspace, name: str, read: Callable[[Path], Path] = lambda final: final) -> Path:
    path = read(workspace.linked / name)
    if not path.exists():
        raise InputError(str(path), "the linkage outputs are missing", hint="run 'ehl link' first")
    return path


def write_report(
    workspace: Workspace,
    place: Callable[[Path], Path] = lambda final: final,
    read: Callable[[Path], Path] = lambda final: final,
) -> Path:
    """Write ``reports/linkage/report.md`` and its charts from the linked zone; returns the report path.

    ``place(final)`` says where each file is written and ``read(final)`` where each linked table
    is read (an audited step's ``stage`` and ``staged``); the returned path is the final one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = workspace.reports / "linkage"
    make_zone_folder(out)
    summary = json.loads(_linked_file(workspace, "link_summary.json", read).read_text())
    rates = pd.read_parquet(_linked_file(workspace, "match_rates.parquet", read))
    candidates = pd.read_parquet(_linked_file(workspace, "candidate_pairs.parquet", read))
    links = pd.read_parquet(_linked_file(workspace, "links.parquet", read))
    model = json.loads(_linked_file(workspace, "model.json", read).read_text())

    # match-weight histogram: every scored candidate pair, and each client's best candidate
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(min(-10.0, candidates["match_weight"].min() if len(candidates) else -10), 40, 51)
    ax.hist(candidates["match_weight"], bins=bins, alpha=0.5, label="all candidate pairs")
    ax.hist(links["match_weight"].dropna(), bins=bins, alpha=0.7, label="best candidate per client")
    ax.set_xlabel("match weight (bits)")
    ax.set_ylabel("pairs")
    ax.legend()
    _save(fig, place(out / "match_weight_histogram.png"))

    # m and u probabilities of every non-null level
    rows = [
        (
            c["output_column_name"],
            level["label_for_charts"],
            level.get("m_probability"),
            level.get("u_probability"),
        )
        for c in model["comparisons"]
        for level in c["comparison_levels"]
        if not level.get("is_null_level")
    ]
    mu = pd.DataFrame(rows, columns=["comparison", "level", "m", "u"])
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(mu) + 1))
    y = np.arange(len(mu))
    ax.barh(y - 0.2, mu["m"].astype(float), height=0.4, label="m (among matches)")
    ax.barh(y + 0.2, mu["u"].astype(float), height=0.4, label="u (among non-matches)")
    ax.set_yticks(y, [f"{c}: {lv}" for c, lv in zip(mu["comparison"], mu["level"], strict=True)], fontsize=7)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    _save(fig, place(out / "m_u_parameters.png"))

    # match rates by group
    grouped = rates[rates["group"] != "overall"]
    fig, ax = plt.subplots(figsize=(8, 0.28 * max(1, len(grouped)) + 1))
    labels = [f"{g}: {lv}" for g, lv in zip(grouped["group"], grouped["level"], strict=True)]
    ax.barh(np.arange(len(grouped)), 100 * grouped["match_rate"].astype(float))
    ax.set_yticks(np.arange(len(grouped)), labels, fontsize=7)
    ax.set_xlabel("match rate (%)")
    ax.invert_yaxis()
    _save(fig, place(out / "match_rates_by_group.png"))

    lines = ["# Linkage report", "", "## Verdict", ""]
    lines += [f"- {sentence}" for sentence in verdict(summary, rates)]
    lines += ["", "## Comparisons made", ""]
    lines += ["| blocking rule | new comparisons | cumulative |", "|---|---:|---:|"]
    lines += [
        f"| `{b['rule']}` | {b['comparisons']:,} | {b['cumulative']:,} |" for b in summary["blocking_rules"]
    ]
    lines += [
        "",
        f"Total: {summary['comparisons']:,} comparisons. Model trained in this run: {summary['trained']}.",
    ]
    lines += [f"Model file SHA-256: `{summary['model_sha256']}`.", ""]
    lines += [
        "## Match rates",
        "",
        "| group | level | clients | matched | match rate |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.group} | {r.level} | {r.clients:,} | {r.matched:,} | {100 * r.match_rate:.1f}% |"
        for r in rates.itertuples()
    ]
    lines += ["", "![Match rates by group](match_rates_by_group.png)", ""]
    lines += ["## Match weights", "", "![Match weight histogram](match_weight_histogram.png)", ""]
    lines += ["## Model parameters", "", "![m and u probabilities](m_u_parameters.png)", ""]
    write_text(place(out / "report.md"), "\n".join(lines) + "\n")
    return out / "report.md"


def _save(fig: Any, path: Path) -> None:
    from ig_policies.workspace import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Evaluation against the synthetic truth


@dataclass(frozen=True)
class Evaluation:
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int
    by_group: pd.DataFrame
    threshold_curve: pd.DataFrame
    #: clients whose true health record is absent from the linkable table (e.g. opted out)
    excluded_true_pairs: int = 0
    report_path: Path | None = None


def linked_programmes(workspace: Workspace) -> set[str]:
    """The programmes of the linked clients: whose clients the truth is needed for."""
    links = pd.read_parquet(_linked_file(workspace, "links.parquet"))
    return set(links["programme"].dropna().astype(str)) if "programme" in links else set()


def _prf(predicted: pd.Series, truth: pd.Series) -> tuple[int, int, int]:
    """Counts over clients: predicted/true patient per client (null = no link)."""
    has_pred = predicted.notna()
    has_true = truth.notna()
    tp = int((has_pred & has_true & (predicted == truth)).sum())
    fp = int(has_pred.sum()) - tp
    fn = int(has_true.sum()) - tp
    return tp, fp, fn


def _scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_links(
    links: pd.DataFrame, truth: pd.DataFrame, groups: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Precision, recall and F1 of ``matched`` links against the truth, overall and by group."""
    joined = links.merge(truth, on="client_pseudonym", how="left")
    predicted = joined["patient_pseudonym"].where(joined["match_status"].eq("matched"))
    tp, fp, fn = _prf(predicted, joined["true_patient"])
    precision, recall, f1 = _scores(tp, fp, fn)
    rows = []
    if groups is not None:
        overlap = [c for c in groups.columns if c in joined.columns and c != "client_pseudonym"]
        joined = joined.drop(columns=overlap).merge(groups, on="client_pseudonym", how="left")
        for group in GROUPS:
            if group not in joined:
                continue
            for level, part in joined.groupby(joined[group].astype("string").fillna(UNKNOWN), sort=True):
                pred = part["patient_pseudonym"].where(part["match_status"].eq("matched"))
                g = _prf(pred, part["true_patient"])
                rows.append((group, str(level), len(part), *g, *_scores(*g)))
    by_group = pd.DataFrame(
        rows, columns=["group", "level", "clients", "tp", "fp", "fn", "precision", "recall", "f1"]
    )
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "by_group": by_group,
    }


def threshold_curve(
    candidates: pd.DataFrame, truth: pd.DataFrame, thresholds: np.ndarray | None = None
) -> pd.DataFrame:
    """Precision, recall and F1 if each client's best candidate were accepted at each threshold."""
    thresholds = (
        thresholds
        if thresholds is not None
        else np.array([0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999])
    )
    best = candidates.sort_values(
        ["client_pseudonym", "match_weight", "patient_pseudonym"], ascending=[True, False, True]
    )
    best = best.drop_duplicates("client_pseudonym")
    joined = truth.merge(
        best[["client_pseudonym", "patient_pseudonym", "match_probability"]],
        on="client_pseudonym",
        how="left",
    )
    rows = []
    for t in thresholds:
        predicted = joined["patient_pseudonym"].where(joined["match_probability"].ge(t))
        counts = _prf(predicted, joined["true_patient"])
        rows.append((float(t), *counts, *_scores(*counts)))
    return pd.DataFrame(rows, columns=["threshold", "tp", "fp", "fn", "precision", "recall", "f1"])


def evaluate(
    workspace: Workspace,
    truth: pd.DataFrame,
    config: LinkageConfig | None = None,
    place: Callable[[Path], Path] = lambda final: final,
) -> Evaluation:
    """Score ``linked/`` against the truth and write ``reports/linkage/evaluation.md`` and its curve.

    ``place(final)`` says where each file is written (an audited step's ``stage``).

    ``truth`` is already in research pseudonyms, (client_pseudonym, true_patient) per client, as
    made by ``linkage.identifiable.truth.pseudonymised_truth`` for ``linked_programmes(workspace)``:
    the evaluation never sees a key or a record reference.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = config or default_linkage_config()
    links = pd.read_parquet(_linked_file(workspace, "links.parquet"))
    candidates = pd.read_parquet(_linked_file(workspace, "candidate_pairs.parquet"))
    known = truth[truth["client_pseudonym"].isin(set(links["client_pseudonym"]))].copy()
    # a client whose health record is not in the linkable table (National Data Opt-out, not
    # registered) has nothing to link to: "unmatched" is then the right answer, not a miss
    linkable = set(
        pd.read_parquet(workspace.root / config.right.path, columns=[config.right.id_column])[
            config.right.id_column
        ].astype(str)
    )
    excluded = known["true_patient"].notna() & ~known["true_patient"].isin(linkable)
    known.loc[excluded, "true_patient"] = None
    if known.empty:
        raise InputError(
            str(workspace.truth / "record_links.parquet"),
            "no client in the truth matches a linked client pseudonym",
            hint="the master secret or the policy's project id / key version differ from the ones used to pseudonymise",
        )
    groups = client_groups(workspace, config)
    scores = score_links(links, known, groups)
    curve = threshold_curve(candidates, known)

    out = workspace.reports / "linkage"
    make_zone_folder(out)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve["threshold"], curve["precision"], label="precision")
    ax.plot(curve["threshold"], curve["recall"], label="recall")
    ax.plot(curve["threshold"], curve["f1"], label="F1", linewidth=2)
    ax.set_xscale("logit")
    ax.set_xlabel("match probability threshold")
    ax.legend()
    _save(fig, place(out / "threshold_f1.png"))
    write_parquet(scores["by_group"], place(out / "evaluation_by_group.parquet"))
    write_json(
        place(out / "evaluation.json"),
        {k: scores[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}
        | {"excluded_true_pairs": int(excluded.sum())}
        | {"threshold_curve": curve.to_dict(orient="records")},
    )
    lines = [
        "# Linkage evaluation against the synthetic truth",
        "",
        f"Precision: {scores['precision']:.3f}  ",
        f"Recall: {scores['recall']:.3f}  ",
        f"F1: {scores['f1']:.3f}",
        "",
        f"{int(excluded.sum()):,} client(s) belong to a person whose health record is not in the linkable table "
        "(National Data Opt-out or not registered); for them 'unmatched' counts as correct.",
        "",
        "## By group",
        "",
        "| group | level | clients | precision | recall | F1 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.group} | {r.level} | {r.clients:,} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |"
        for r in scores["by_group"].itertuples()
    ]
    lines += [
        "",
        "## Threshold and F1",
        "",
        "| threshold | precision | recall | F1 |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.threshold:g} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |" for r in curve.itertuples()
    ]
    lines += ["", "![Threshold and F1](threshold_f1.png)", ""]
    report = out / "evaluation.md"
    write_text(place(report), "\n".join(lines) + "\n")
    return Evaluation(
        precision=scores["precision"],
        recall=scores["recall"],
        f1=scores["f1"],
        true_positives=scores["tp"],
        false_positives=scores["fp"],
        false_negatives=scores["fn"],
        by_group=scores["by_group"],
        threshold_curve=curve,
        excluded_true_pairs=int(excluded.sum()),
        report_path=report,
    )
