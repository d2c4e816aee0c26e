"""The trained model as a file: normalised (same bytes on either backend), saved, hashed, loaded.

A saved model is re-used without retraining (an approved model), so loading refuses a file that is
not a trained model for linking two pseudonymised tables, with the reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ig_policies.errors import InputError
from ig_policies.workspace import write_text
from linkage.splink_model.comparisons import UNIQUE_ID

#: Floats in the saved model are rounded to this many significant digits so that the two
#: backends, which may sum in a different order, write byte-identical model files.
MODEL_SIGNIFICANT_DIGITS = 10


def _round_floats(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{MODEL_SIGNIFICANT_DIGITS}g}")
    if isinstance(obj, dict):
        return {k: _round_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round_floats(v) for v in obj]
    return obj


def normalised_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model without run-specific fields (random linker id, SQL dialect), floats rounded.

    This is what is saved and hashed: the same data and seed give the same file on either backend.
    """
    out = copy.deepcopy(model)
    out.pop("linker_uid", None)
    out.pop("sql_dialect", None)
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict):
            rule.pop("sql_dialect", None)
    return _round_floats(out)


def model_json(model: dict[str, Any]) -> str:
    return json.dumps(normalised_model(model), indent=2, sort_keys=True) + "\n"


def save_model(model: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write the model atomically; returns its SHA-256 (recorded in the audit entry)."""
    text = model_json(model)
    write_text(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def load_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved, approved model; a file that is not a token model is refused with a reason."""
    p = Path(path)
    try:
        model = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(str(p), f"cannot read the model file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(str(p), f"not valid JSON ({exc.msg})", row=exc.lineno) from None
    if not isinstance(model, dict) or "comparisons" not in model:
        raise InputError(
            str(p), "not a Splink model file (no 'comparisons')", hint="pass the linked/model.json of a run"
        )
    untrained = [
        c.get("output_column_name", "?")
        for c in model["comparisons"]
        for level in c.get("comparison_levels", [])
        if not level.get("is_null_level") and ("m_probability" not in level or "u_probability" not in level)
    ]
    if untrained:
        raise InputError(
            str(p),
            f"the model is not trained for: {', '.join(sorted(set(untrained)))}",
            hint="re-use only a model written by a completed 'ehl link' run",
        )
    if model.get("link_type") != "link_only" or model.get("unique_id_column_name") != UNIQUE_ID:
        raise InputError(str(p), "the model was not built for linking two pseudonymised tables")
    return normalised_model(model)


def model_hash(model: dict[str, Any]) -> str:
    return hashlib.sha256(model_json(model).encode()).hexdigest()
