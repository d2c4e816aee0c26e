"""What the model compares: the comparisons and their levels, the blocking rules, the Splink settings.

Every comparison is an exact-match test on HMAC tokens, because equality is the only thing a
keyed hash preserves. Partial agreement is recovered from *derived* tokens computed before hashing
(canonical forename, phonetic codes, initials, date-of-birth parts, postcode sector and district),
so "Bob Smyth" and "Robert Smith" still share levels. When both tables carry keyed Bloom-filter
encodings (``linkage.bloom``), Dice-coefficient levels follow the exact-token levels
(``with_dice_levels``) and catch typos that tokens cannot see. All SQL here is plain equality,
``IS NULL`` and integer ``bit_count`` arithmetic, valid unchanged on DuckDB and Spark.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from linkage import bloom
from linkage.linkage_config import LOGICAL_BLOOM, LinkageConfig

UNIQUE_ID = "unique_id"


class Comparison(StrEnum):
    """The model's comparisons by name (Splink's ``output_column_name``; ``gamma_<name>`` in the links).

    A name says what evidence the comparison weighs; it compares tokens and encodings only, never
    the values themselves.
    """

    NHS_NUMBER = "nhs_number"
    NAME = "name"
    DATE_OF_BIRTH = "date_of_birth"
    POSTCODE = "postcode"
    SEX = "sex"


#: Prediction blocking rules. Each is cheap on its own at 100k x 1M (a few million pairs at most)
#: and together they catch a true pair unless it disagrees on NHS number, full DOB, full name and
#: (postcode or surname) + birth year at once.
PREDICTION_BLOCKING_RULES: tuple[str, ...] = (
    "l.t_nhs_number = r.t_nhs_number",
    "l.t_dob = r.t_dob",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname",
    "l.t_surname = r.t_surname and l.t_dob_year = r.t_dob_year",
    "l.t_postcode = r.t_postcode and l.t_dob_year = r.t_dob_year",
)

#: EM rounds: the first estimates names, postcode, sex and NHS number among same-DOB pairs; the
#: second estimates DOB (and again postcode, sex, NHS number) among same-name pairs.
EM_BLOCKING_RULES: tuple[str, ...] = (
    "l.t_dob = r.t_dob",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname",
)

#: Near-certain matches, used to estimate how many clients have a health record at all.
DETERMINISTIC_RULES: tuple[str, ...] = (
    "l.t_nhs_number = r.t_nhs_number",
    "l.t_forename = r.t_forename and l.t_surname = r.t_surname and l.t_dob = r.t_dob",
)
DETERMINISTIC_RECALL = 0.8


def _level(
    sql: str, label: str, *, m: float = 0.0, u: float = 0.0, null: bool = False, tf: str | None = None
) -> dict[str, Any]:
    """One comparison level; ``m``/``u`` are starting values that training replaces.

    They matter only for a level the data never shows (a rare level in a small extract): it then
    keeps a conservative prior instead of Splink's generic default.
    """
    level: dict[str, Any] = {"sql_condition": sql, "label_for_charts": label}
    if null:
        level["is_null_level"] = True
    else:
        level["m_probability"] = m
        level["u_probability"] = u
    if tf:
        level["tf_adjustment_column"] = tf
        level["tf_adjustment_weight"] = 1.0
    return level


def _eq(col: str) -> str:
    return f"{col}_l = {col}_r"


def _either_null(col: str) -> str:
    return f"({col}_l IS NULL OR {col}_r IS NULL)"


def token_comparisons() -> list[dict[str, Any]]:
    """The comparisons of the token model, in the order they appear in the model and reports."""
    name = {
        "output_column_name": Comparison.NAME.value,
        "comparison_description": "forename and surname tokens",
        "comparison_levels": [
            _level(f"{_either_null('t_forename')} AND {_either_null('t_surname')}", "missing", null=True),
            _level(f"{_eq('t_forename')} AND {_eq('t_surname')}", "exact", m=0.85, u=1e-5, tf="t_surname"),
            _level(
                "t_forename_l = t_surname_r AND t_surname_l = t_forename_r",
                "forename and surname swapped",
                m=0.01,
                u=1e-7,
            ),
            _level(
                f"{_eq('t_forename_canonical')} AND {_eq('t_surname')}",
                "canonical forename, surname",
                m=0.03,
                u=1e-5,
                tf="t_surname",
            ),
            _level(
                f"{_eq('t_forename_phonetic')} AND {_eq('t_surname_phonetic')}",
                "both sound alike",
                m=0.03,
                u=1e-4,
            ),
            _level(
                f"{_eq('t_forename_initial')} AND {_eq('t_surname')}",
                "initial and surname",
                m=0.02,
                u=1e-3,
                tf="t_surname",
            ),
            _level(f"{_eq('t_forename')} OR {_eq('t_forename_canonical')}", "forename only", m=0.03, u=0.02),
            _level(_eq("t_surname"), "surname only", m=0.02, u=0.005, tf="t_surname"),
            _level(
                "t_forename_l = t_surname_r OR t_surname_l = t_forename_r",
                "one name in the other's place",
                m=0.005,
                u=1e-4,
            ),
            _level("ELSE", "different", m=0.01, u=0.97),
        ],
    }
    dob = {
        "output_column_name": Comparison.DATE_OF_BIRTH.value,
        "comparison_description": "date of birth tokens and their parts",
        "comparison_levels": [
            _level(_either_null("t_dob"), "missing", null=True),
            _level(_eq("t_dob"), "exact", m=0.9, u=5e-5),
            _level(
                f"{_eq('t_dob_year')} AND t_dob_day_l = t_dob_month_r AND t_dob_month_l = t_dob_day_r",
                "day and month transposed",
                m=0.01,
                u=1e-6,
            ),
            _level(f"{_eq('t_dob_year')} AND {_eq('t_dob_month')}", "year and month", m=0.03, u=5e-4),
            # a slip in the month: year and day agree (the cleartext "one character different"
            # level sees it too; without this level it fell to "year")
            _level(f"{_eq('t_dob_year')} AND {_eq('t_dob_day')}", "year and day", m=0.01, u=6e-4),
            _level(f"{_eq('t_dob_month')} AND {_eq('t_dob_day')}", "day and month", m=0.02, u=3e-3),
            _level(_eq("t_dob_year"), "year", m=0.02, u=0.02),
            _level("ELSE", "different", m=0.02, u=0.97),
        ],
    }
    postcode = {
        "output_column_name": Comparison.POSTCODE.value,
        "comparison_description": "postcode, sector and district tokens",
        "comparison_levels": [
            _level(_either_null("t_postcode"), "missing", null=True),
            _level(_eq("t_postcode"), "exact", m=0.85, u=1e-4),
            _level(_eq("t_postcode_sector"), "same sector", m=0.03, u=1e-3),
            _level(_eq("t_postcode_district"), "same district", m=0.03, u=0.02),
            _level("ELSE", "different", m=0.09, u=0.98),
        ],
    }
    nhs = {
        "output_column_name": Comparison.NHS_NUMBER.value,
        "comparison_description": "NHS number token",
        "comparison_levels": [
            _level(_either_null("t_nhs_number"), "missing", null=True),
            _level(_eq("t_nhs_number"), "exact", m=0.99, u=1e-6),
            _level("ELSE", "different", m=0.01, u=1.0),
        ],
    }
    sex = {
        "output_column_name": Comparison.SEX.value,
        "comparison_description": "recorded sex",
        "comparison_levels": [
            _level(_either_null("sex"), "missing", null=True),
            _level(_eq("sex"), "same", m=0.98, u=0.5),
            _level("ELSE", "different", m=0.02, u=0.5),
        ],
    }
    return [nhs, name, dob, postcode, sex]


def with_dice_levels(
    comparisons: list[dict[str, Any]],
    words: int,
    *,
    name_thresholds: Sequence[float] = bloom.NAME_DICE_THRESHOLDS,
    one_name_thresholds: Sequence[float] = bloom.ONE_NAME_DICE_THRESHOLDS,
    postcode_thresholds: Sequence[float] = bloom.POSTCODE_DICE_THRESHOLDS,
    after: Sequence[str] = bloom.DICE_AFTER,
) -> list[dict[str, Any]]:
    """The token model's comparisons with Dice levels on the encodings after the exact-token level.

    Exact tokens decide first (an exact match stays the strongest evidence, with its term-frequency
    adjustment); the Dice levels then catch what tokens cannot see, such as a typo, before the
    weaker derived-token levels. Blocking is untouched: the encodings refine scoring only.
    A pair missing an encoding fails its Dice levels (SQL null) and falls through to the next level.
    The "one name" level goes last, just before "different": every token level (one exact name,
    phonetic codes, initials) is stronger evidence and decides first.
    """
    extra = {
        Comparison.NAME: [
            bloom.dice_level(bloom.NAME_COLUMNS, words, t, "names", m, u)
            for t, m, u in zip(name_thresholds, (0.04, 0.02, 0.01), (1e-4, 1e-3, 1e-2), strict=False)
        ],
        Comparison.POSTCODE: [
            bloom.dice_level(bloom.POSTCODE_COLUMNS, words, t, Comparison.POSTCODE.value, 0.02, 1e-3)
            for t in postcode_thresholds
        ],
    }
    last = {
        Comparison.NAME: [
            bloom.one_dice_level(bloom.NAME_COLUMNS, words, t, 0.005, 5e-3) for t in one_name_thresholds
        ]
    }
    out = copy.deepcopy(comparisons)
    for comparison in out:
        name = comparison["output_column_name"]
        levels = extra.get(name)
        if not levels:
            continue
        existing = comparison["comparison_levels"]
        labels = [lv.get("label_for_charts") for lv in existing]
        at = max(labels.index(label) for label in (*after, "exact") if label in labels)
        tail = existing[at + 1 :]
        if last.get(name) and tail and tail[-1].get("sql_condition") == "ELSE":
            tail = tail[:-1] + last[name] + tail[-1:]
        comparison["comparison_levels"] = existing[: at + 1] + levels + tail
    return out


def default_comparisons(bloom_words: int | None) -> list[dict[str, Any]]:
    """The token comparisons, with Dice levels on the Bloom encodings when both tables carry them."""
    comparisons = token_comparisons()
    return with_dice_levels(comparisons, bloom_words) if bloom_words else comparisons


def uses_bloom(model: dict[str, Any]) -> bool:
    """Whether a (saved) model compares Bloom encodings, so the tables must carry them."""
    return any(
        f"{column}_w0_l" in str(level.get("sql_condition", ""))
        for comparison in model.get("comparisons", [])
        for level in comparison.get("comparison_levels", [])
        for column in LOGICAL_BLOOM
    )


def model_settings(
    config: LinkageConfig, *, comparisons: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Splink settings dictionary (untrained) for linking ``left`` records to ``right`` ones."""
    return {
        "link_type": "link_only",
        "unique_id_column_name": UNIQUE_ID,
        "comparisons": comparisons if comparisons is not None else token_comparisons(),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": rule, "sql_dialect": None} for rule in PREDICTION_BLOCKING_RULES
        ],
        # Splink keeps the gamma (level) codes only with the matching columns; the link stage
        # selects the codes and drops every token column before anything leaves the backend.
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": False,
        "max_iterations": config.max_em_iterations,
        "em_convergence": 0.0001,
        "probability_two_random_records_match": 0.0001,
    }


def level_labels(model: dict[str, Any]) -> dict[str, dict[int, str]]:
    """comparison name -> {gamma value -> label}, for showing which levels agreed (never values)."""
    labels: dict[str, dict[int, str]] = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        n_non_null = sum(1 for level in levels if not level.get("is_null_level"))
        mapping: dict[int, str] = {}
        gamma = n_non_null - 1
        for level in levels:
            if level.get("is_null_level"):
                mapping[-1] = level.get("label_for_charts", "missing")
            else:
                mapping[gamma] = level.get("label_for_charts", str(gamma))
                gamma -= 1
        labels[comparison["output_column_name"]] = mapping
    return labels


def comparison_names(model: dict[str, Any]) -> Sequence[str]:
    return [c["output_column_name"] for c in model["comparisons"]]
