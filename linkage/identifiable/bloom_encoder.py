"""The keyed Bloom-filter encoder: turns standardised identifiers into CLK encodings.

This module reads standardised identifiers and key material, so it lives inside
``linkage.identifiable``; only the pseudonymisation stage calls it. The encoding parameters, the
scheme description and the Dice comparison SQL the linkage model uses live in ``linkage.bloom``,
which never sees an identifier or a key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ig_policies.errors import ConfigError
from linkage.bloom import ALPHABET, WORD_BITS, BloomSettings, key_purpose
from linkage.identifiable import STANDARDISED_IDENTIFIERS

if TYPE_CHECKING:
    from pyspark.sql import Column

    from ig_policies.master_secret import MasterSecret

# --------------------------------------------------------------------------------------------
# Encoding (numpy)


class BloomEncoder:
    """Encodes one field under one key: the key only ever lives in its table of bigram masks.

    ``repr`` never shows the table (it is key-derived).
    """

    def __init__(self, key: bytes, hashes: int, bits: int, padding: str = "_", fold: bool = True):
        self.bits, self.padding, self.fold = bits, padding, fold
        self.words = bits // WORD_BITS
        n_chars = len(ALPHABET) + 2  # the alphabet, the padding, "other"
        self._n_chars = n_chars
        code = np.full(256, n_chars - 1, dtype=np.int64)
        for i, ch in enumerate(ALPHABET):
            code[ord(ch)] = i
        code[ord(padding)] = len(ALPHABET)
        self._code = code
        self._masks = self._bigram_masks(key, hashes)

    def __repr__(self) -> str:
        return f"BloomEncoder(bits={self.bits}, fold={self.fold}, <key redacted>)"

    def _bigram_masks(self, key: bytes, hashes: int) -> np.ndarray:
        """uint64 array (bigram index, stored words): every bigram's bits, already folded.

        Folding is XOR, which does not distribute over OR, so the *long* masks are kept and folded
        only after a record's bigrams are OR-ed together; see ``encode``.
        """
        symbols = [*ALPHABET, self.padding, "\x00"]
        long_bits = 2 * self.bits if self.fold else self.bits
        masks = np.zeros((self._n_chars**2, long_bits // WORD_BITS), dtype=np.uint64)
        for a, first in enumerate(symbols):
            for b, second in enumerate(symbols):
                bigram = (first + second).encode("latin-1")
                positions: list[int] = []
                block = 0
                while len(positions) < hashes:
                    digest = hmac.new(key, bigram + b"\x1f" + str(block).encode(), hashlib.sha256).digest()
                    positions += [
                        int.from_bytes(digest[i : i + 2], "big") % long_bits for i in range(0, 32, 2)
                    ]
                    block += 1
                row = masks[a * self._n_chars + b]
                for p in positions[:hashes]:
                    row[p // WORD_BITS] |= np.uint64(1) << np.uint64(p % WORD_BITS)
        return masks

    def encode(self, values: pd.Series) -> pd.Series:
        """Encodings (numpy int64 arrays of ``words`` words) of standardised values; None for
        missing or empty values."""
        text = values.astype(object)
        present = np.array([isinstance(v, str) and v != "" for v in text], dtype=bool)
        if not present.any():
            return pd.Series([None] * len(values), index=values.index, dtype=object)
        pad = self.padding
        padded = [pad + v + pad for v in text[present]]
        raw = "".join(padded).encode("ascii", "replace")  # non-ASCII -> "?" (one byte per character)
        lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=len(padded))
        codes = self._code[np.frombuffer(raw, dtype=np.uint8)]
        bigram = codes[:-1] * self._n_chars + codes[1:]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        # a record of length L has L-1 bigrams at [start, start + L - 1): drop the bigrams that
        # straddle two records
        keep = np.ones(len(bigram), dtype=bool)
        keep[(starts + lengths - 1)[:-1]] = False
        bigram = bigram[keep]
        record_starts = starts - np.arange(len(starts))  # each earlier record lost one straddle
        long = np.bitwise_or.reduceat(self._masks[bigram], record_starts, axis=0)
        if self.fold:
            long = long[:, : self.words] ^ long[:, self.words :]
        words = long.view(np.int64)
        result: list[np.ndarray | None] = [None] * len(values)
        for i, row in zip(np.flatnonzero(present), words, strict=True):
            result[i] = row
        return pd.Series(result, index=values.index, dtype=object)


def field_key(master_secret: MasterSecret, field: str, project_id: str, key_version: int) -> bytes:
    """The key of one field's encodings (HKDF from the master secret; distinct per field)."""
    return master_secret.derive(key_purpose(field), project_id, key_version)


def encoders(
    settings: BloomSettings, master_secret: MasterSecret, project_id: str, key_version: int
) -> dict[str, BloomEncoder]:
    """One encoder per configured field, each under its own key; its source is checked first."""
    check_sources(settings)
    return {
        name: BloomEncoder(
            field_key(master_secret, name, project_id, key_version),
            f.hashes,
            settings.bits,
            settings.padding,
            settings.fold,
        )
        for name, f in settings.fields.items()
    }


def check_sources(settings: BloomSettings) -> None:
    """Refuse, before any row is read, an encoding whose source is not a standardised identifier."""
    for name, f in settings.fields.items():
        if f.source not in STANDARDISED_IDENTIFIERS:
            raise ConfigError(
                f"pseudonymisation.bloom.fields.{name}.source: {f.source!r} is not a standardised "
                f"identifier column (one of {', '.join(STANDARDISED_IDENTIFIERS)})",
                hint="fix the key in the settings file, or give the encoding column the name of its "
                "field (bf_surname reads std_surname)",
            )


def encode_values(values: Sequence[str | None], encoder: BloomEncoder) -> list[np.ndarray | None]:
    """Convenience for small look-ups and tests: encodings of a list of values."""
    return list(encoder.encode(pd.Series(list(values), dtype=object)))


def bloom_column(encoder: BloomEncoder, value: Column) -> Column:
    """Spark column: the encoding (``array<bigint>``) of a standardised value, via an Arrow
    ``pandas_udf`` running ``encoder.encode`` on whole batches (never row at a time)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, LongType

    @F.pandas_udf(ArrayType(LongType()))  # type: ignore[call-overload]
    def encode(batch: pd.Series) -> pd.Series:
        return encoder.encode(batch)

    return encode(value)


def add_bloom_columns(
    std: Any, encoders_by_column: Mapping[str, BloomEncoder], settings: BloomSettings
) -> Any:
    """Add every configured encoding column to a standardised Spark DataFrame."""
    from pyspark.sql import functions as F

    return std.withColumns(
        {name: bloom_column(encoders_by_column[name], F.col(f.source)) for name, f in settings.fields.items()}
    )
