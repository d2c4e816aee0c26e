"""Neutralise spreadsheet formulas in text cells of every CSV a person will open.

A CSV or workbook the project writes (quarantine reports, released output tables) is opened in
Excel or LibreOffice by a processor, an IG officer or a researcher. A text cell beginning with
``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs skip first) is
run as a formula there: ``=cmd|' /C calc'!A0`` in a provider's name field is the classic
injection. Such text gets a leading apostrophe, which spreadsheets show as plain text. Real
numbers (numeric columns, and text that is just a signed number such as ``-3.5``) are left
alone, so counts and estimates stay numbers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_formula(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(_TRIGGERS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells and column names cannot run as formulas (numbers untouched)."""
    import pandas as pd

    out = df.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
            out[column] = series.map(neutralise_formula, na_action="ignore")
    out.columns = [neutralise_formula(c) for c in out.columns]
    return out
