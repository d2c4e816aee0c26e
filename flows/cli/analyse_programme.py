"""Analysis commands registered on `ehl analyse` (being built)."""

from __future__ import annotations

from flows.cli.analyse import app  # noqa: F401
