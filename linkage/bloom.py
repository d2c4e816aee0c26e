"""Keyed Bloom-filter encodings of names and postcodes, and Dice-coefficient comparison in SQL.

An HMAC token only says "equal" or "not equal", so "JONATHON" and "JONATHAN" look as different as
"JONATHAN" and "SMITH". A Bloom-filter encoding keeps *similarity* without keeping the value: the
standardised value is padded (``_JONATHAN_``) and split into character bigrams (``_J``, ``JO``,
...), and each bigram sets ``hashes`` bit positions in an array of ``bits`` bits. Two values that
share most bigrams share most set bits, so the Dice coefficient of their encodings
(``2 |A and B| / (|A| + |B|)``) is high for a typo and low for unrelated names.

The bit positions of a bigram come from HMAC-SHA256 under a key derived from the master secret for
one field, project and key version (``derive("bloom/<field>", project, version)``): without the key
nobody can build a dictionary of encodings, and the encodings of forenames cannot be compared with
those of surnames or with another project's. This is Schnell's "cryptographic long-term key"
(CLK) construction, one filter per field.

Hardening. A Bloom filter leaks bigram frequencies (a frequent bigram sets its bits in many
records). Each filter is built at twice the stored length and *XOR-folded* in half (bit ``i`` of
the stored filter is bit ``i`` XOR bit ``i + bits`` of the long one), so a stored bit no longer
says which bigram, or whether one or two bigrams, set it; the cost in accuracy is measured by
``benchmarks/link.py`` (``bloom`` vs ``bloom-unfolded`` rows).

Storage. An encoding is a list of ``bits / 64`` signed 64-bit words (``array<bigint>`` in Parquet).
For Splink each word becomes a column (``bf_forename_w0`` ...), and the Dice levels are written
once with ``bit_count`` over ``&`` of words, plain integer arithmetic that DuckDB and Spark
evaluate identically (no floating-point division decides a level).

Encodings are computed with numpy over whole columns (a table of every bigram's bit mask, looked
up and OR-reduced per record); on Spark the same numpy function runs in an Arrow ``pandas_udf``, so
Python and Spark encodings are identical by construction.

This module holds the encoding parameters and the comparison side only: it never sees an identifier
or a key. The keyed encoder itself is ``linkage.identifiable.bloom_encoder``, called only by the
pseudonymisation stage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

BLOOM_SCHEME = (
    "clk/v1: padded character bigrams; per bigram k positions from HMAC-SHA256(k_field, bigram || 0x1f"
    " || block), 2 bytes each, mod 2*bits; filter XOR-folded to bits (when fold); stored as bits/64 int64 words"
)
#: Characters a standardised name or postcode can hold; anything else is one "other" character.
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"
WORD_BITS = 64
METADATA_FILE = "_ehl_metadata.json"  # as written by linkage.identifiable.pseudonymise


def key_purpose(field: str) -> str:
    """The key-derivation purpose of one field's encodings: distinct per field."""
    return f"bloom/{field}"


#: The prefix of every standardised column. Which ``std_`` columns exist is known only to the
#: pseudonymisation stage (``linkage.identifiable``), which checks a source before it reads a row.
STANDARDISED_PREFIX = "std_"
ENCODING_PREFIX = "bf_"


class BloomField(BaseModel):
    """How one field is encoded: the standardised column it reads and bits set per bigram.

    ``source`` defaults to the standardised column of the same field: ``bf_surname`` reads
    ``std_`` + ``surname``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(None, description="standardised column the encoding is computed from")
    hashes: int = Field(ge=1, le=256, description="bit positions per bigram (k)")

    @field_validator("source")
    @classmethod
    def _standardised_text(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(STANDARDISED_PREFIX) and value.isidentifier()):
            raise ValueError(
                f"source must be a standardised column (its name starts with {STANDARDISED_PREFIX}), not {value!r}"
            )
        return value


def _default_fields() -> dict[str, BloomField]:
    # Measured on synthetic names (typo vs unrelated Dice, 3,000 values): 128, 256 and 512 stored
    # bits separate about equally well, so the shortest is used (2 words: the cheapest SQL). k = 10
    # sets about 40% of the stored bits of a typical name after folding (k = 20: about half, but
    # the filters are then so full that more one-letter typos fall below the 0.70 Dice level:
    # 84% of forename typos reach it at k = 20, 89% at k = 10). Linked at 20,000 x 200,000, seeds
    # 1-3: k = 10 F1 +0.01 points (default typo rates) and +0.02 (doubled) over k = 20, every seed
    # at least as good; 256 bits with k = 10 or 20 measured the same as 128 with k = 10.
    return {name: BloomField(hashes=10) for name in ("bf_forename", "bf_surname", "bf_postcode")}


class BloomSettings(BaseModel):
    """Encoding parameters; recorded with the output (``_ehl_metadata.json``) and in the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: int = Field(128, description="stored filter length in bits (a multiple of 64)")
    padding: str = Field("_", min_length=1, max_length=1, description="pad character at both ends")
    fold: bool = Field(True, description="XOR-fold a filter of 2*bits into bits (hardening)")
    fields: dict[str, BloomField] = Field(default_factory=_default_fields, validate_default=True)

    @field_validator("bits")
    @classmethod
    def _whole_words(cls, value: int) -> int:
        if value < WORD_BITS or value % WORD_BITS or value > 4096:
            raise ValueError(f"bits must be a multiple of {WORD_BITS} between 64 and 4096, not {value}")
        return value

    @field_validator("padding")
    @classmethod
    def _padding_outside_alphabet(cls, value: str) -> str:
        if value in ALPHABET or not value.isascii():
            raise ValueError(f"the padding character must be ASCII and not one of {ALPHABET!r}")
        return value

    @field_validator("fields")
    @classmethod
    def _field_names_and_sources(cls, fields: dict[str, BloomField]) -> dict[str, BloomField]:
        bad = [name for name in fields if not name.startswith(ENCODING_PREFIX) or not name.isidentifier()]
        if bad:
            raise ValueError(f"encoding column names must look like bf_<field>: {', '.join(bad)}")
        return {
            name: field
            if field.source is not None
            else field.model_copy(update={"source": STANDARDISED_PREFIX + name.removeprefix(ENCODING_PREFIX)})
            for name, field in fields.items()
        }

    @property
    def words(self) -> int:
        return self.bits // WORD_BITS

    def metadata(self) -> dict[str, Any]:
        """Parameters as recorded with the output: everything but key material."""
        return {
            "scheme": BLOOM_SCHEME,
            "bits": self.bits,
            "words": self.words,
            "padding": self.padding,
            "fold": self.fold,
            "fields": {name: {"source": f.source, "hashes": f.hashes} for name, f in self.fields.items()},
            "key_purposes": {name: key_purpose(name) for name in self.fields},
        }


# --------------------------------------------------------------------------------------------
# Comparing encodings (numpy; used by tests and diagnostics)


def popcount(words: np.ndarray) -> int:
    return int(np.bitwise_count(np.asarray(words).view(np.uint64)).sum())


def dice(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Dice coefficient of two encodings: 2 |A and B| / (|A| + |B|); None when either is missing."""
    if a is None or b is None:
        return None
    total = popcount(a) + popcount(b)
    if total == 0:
        return 1.0
    return 2 * popcount(np.bitwise_and(a, b)) / total


# --------------------------------------------------------------------------------------------
# Splink: word columns and Dice levels (one SQL text for DuckDB and Spark)


def word_columns(column: str, words: int) -> list[str]:
    """The per-word column names Splink compares (``bf_forename_w0`` ...)."""
    return [f"{column}_w{i}" for i in range(words)]


def word_select(source_sql: str, column: str, words: int, dialect: str) -> list[str]:
    """Select expressions splitting an ``array<bigint>`` column into word columns.

    The only backend-specific text: Spark arrays index from 0, DuckDB lists from 1.
    """
    base = 0 if dialect == "spark" else 1
    return [
        f"CAST({source_sql}[{i + base}] AS BIGINT) AS {name}"
        for i, name in enumerate(word_columns(column, words))
    ]


def _sum(terms: list[str]) -> str:
    return "(" + " + ".join(terms) + ")"


def _bits(expr: str) -> str:
    # DuckDB's bit_count returns a TINYINT, which overflows when summed: widen first
    return f"CAST(bit_count({expr}) AS INTEGER)"


def _shared_and_total(columns: Sequence[str], words: int) -> tuple[str, str]:
    shared, total = [], []
    for column in columns:
        for w in word_columns(column, words):
            shared.append(_bits(f"{w}_l & {w}_r"))
            total += [_bits(f"{w}_l"), _bits(f"{w}_r")]
    return _sum(shared), _sum(total)


def dice_condition(columns: Sequence[str], words: int, threshold: float) -> str:
    """SQL: the Dice coefficient over ``columns`` together reaches ``threshold``.

    With several columns (forename and surname) the bits are pooled, so a typo in one name costs
    as much as its share of the whole name. Integer arithmetic only: ``200 * shared >= pct * total``
    (pct = threshold in percent, rounded), so both engines decide every pair identically.
    """
    shared, total = _shared_and_total(columns, words)
    pct = int(round(threshold * 100))
    return f"200 * {shared} >= {pct} * {total}"


def each_dice_condition(columns: Sequence[str], words: int, threshold: float) -> str:
    """SQL: *each* of ``columns`` has a Dice coefficient reaching ``threshold`` on its own.

    Pooling forename and surname would let an exact surname carry an unrelated forename over the
    threshold (measured: it drew same-surname non-matches into the Dice levels and cost recall).
    """
    return " AND ".join(f"({dice_condition([c], words, threshold)})" for c in columns)


def dice_sql(columns: Sequence[str], words: int) -> str:
    """SQL expression of the (pooled) Dice coefficient as a double, for reports and tests."""
    shared, total = _shared_and_total(columns, words)
    return f"CAST(2 * {shared} AS DOUBLE) / CAST({total} AS DOUBLE)"


def present_condition(columns: Sequence[str]) -> str:
    """SQL: every named encoding is present on both sides (its first word is not null)."""
    return " AND ".join(f"{c}_w0_l IS NOT NULL AND {c}_w0_r IS NOT NULL" for c in columns)


#: Dice thresholds of the Splink levels, measured on synthetic names (128 bits, k = 10, folded):
#: a one-letter typo scores a median 0.78 (forenames, 1-2 syllables) to 0.82 (surnames), and 89% /
#: 96% of them reach 0.70; two unrelated names score a median 0.38-0.43, 99% of them below 0.63.
NAME_DICE_THRESHOLDS: tuple[float, ...] = (0.85, 0.7)
#: The level for *one* name similar (the other different, e.g. a typo in the forename and a new
#: surname after marriage) goes just before "different", where such pairs fell before. Measured
#: (20,000 x 200,000, seeds 1-3): F1 +0.10 points at doubled typo rates, +0.02 at the default
#: (empty: no such level).
ONE_NAME_DICE_THRESHOLDS: tuple[float, ...] = (0.7,)
POSTCODE_DICE_THRESHOLDS: tuple[float, ...] = (0.8,)
NAME_COLUMNS: tuple[str, ...] = ("bf_forename", "bf_surname")
POSTCODE_COLUMNS: tuple[str, ...] = ("bf_postcode",)
#: The Dice levels go after the last of these token levels present in a comparison.
DICE_AFTER: tuple[str, ...] = ("exact",)


def any_dice_condition(columns: Sequence[str], words: int, threshold: float) -> str:
    """SQL: at least one of ``columns`` has a Dice coefficient reaching ``threshold`` on its own."""
    return " OR ".join(f"({dice_condition([c], words, threshold)})" for c in columns)


def _level(condition: str, label: str, m: float, u: float) -> dict:
    return {"sql_condition": condition, "label_for_charts": label, "m_probability": m, "u_probability": u}


def dice_level(columns: Sequence[str], words: int, threshold: float, label: str, m: float, u: float) -> dict:
    """One Splink comparison level: the Dice coefficient of each of ``columns`` reaches ``threshold``."""
    return _level(each_dice_condition(columns, words, threshold), f"{label} Dice >= {threshold:.2f}", m, u)


def one_dice_level(columns: Sequence[str], words: int, threshold: float, m: float, u: float) -> dict:
    """One Splink level: at least one of ``columns`` reaches ``threshold`` (the other disagrees)."""
    return _level(any_dice_condition(columns, words, threshold), f"one name Dice >= {threshold:.2f}", m, u)


# --------------------------------------------------------------------------------------------
# Reading encodings back (the linkage side)

#: The encoding columns the linkage model compares (when both tables carry them).
ENCODING_COLUMNS: tuple[str, ...] = (*NAME_COLUMNS, *POSTCODE_COLUMNS)


def table_words(path: str | os.PathLike[str], columns: Sequence[str] = ENCODING_COLUMNS) -> int | None:
    """Words per encoding in a pseudonymised table, or None when it carries no encodings.

    Taken from the table's ``_ehl_metadata.json`` (written with the encodings); a table without
    that record (e.g. written by a test or an older pipeline) is inspected instead.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    root = Path(path)
    dataset = pads.dataset(str(root), format="parquet")
    names = set(dataset.schema.names)
    present = [c for c in columns if c in names]
    if not present:
        return None
    meta_file = root / METADATA_FILE if root.is_dir() else None
    if meta_file is not None and meta_file.is_file():
        meta = json.loads(meta_file.read_text()).get("bloom")
        if isinstance(meta, dict) and isinstance(meta.get("words"), int):
            return int(meta["words"])
    lengths = pc.list_value_length(dataset.head(1000, columns=[present[0]]).column(0))
    longest = pc.max(lengths).as_py()
    return int(longest) if longest else None
