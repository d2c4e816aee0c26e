"""Reading a YAML configuration file into its pydantic model, with one error format for all of them.

Every configuration of the project (settings, dataset configs, the linkage config, the policy, the
trust store, the synthetic-region config, the success-model config) is read here, so a person who
mistypes a key gets the same kind of message whichever file it is in::

    settings.yaml: the settings are not valid
      - linkage.backend: Input should be 'auto', 'duckdb' or 'spark'
      - sprak: unknown key (not one of the allowed keys here; check the spelling)
    What to do: ...

that is: the file, then one line per problem with the key path (``keys[0].public_key`` for the
first entry of a list) and what is wrong. A file that is not YAML names the line and column.

Two things plain YAML loading gets wrong are refused here:

* a key given twice in one mapping (plain YAML keeps the last value silently, so a reviewer reading
  the first would approve something other than what runs);
* unknown keys, which every model refuses (``extra="forbid"``; ``forbids_unknown_keys`` lets a test
  check a model and all the models inside it).

It lives in ``ig_policies`` because every package already depends on it (for ``ConfigError``) and
it depends on nothing of the project but ``ig_policies.errors``, so no package import cycles
through it.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ig_policies.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

UNKNOWN_KEY = "unknown key (not one of the allowed keys here; check the spelling)"


def read_config_file(
    path: str | os.PathLike[str], what: str, *, missing_hint: str | None = None
) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is ``{}``); ``ConfigError`` naming the file otherwise.

    ``what`` names the file for the reader ("the policy", "the settings"); ``missing_hint`` says
    where the path came from when the file does not exist.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: {what} file does not exist", hint=missing_hint or "check the path given"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{p}: {what} file is not UTF-8 text", hint="save it as UTF-8 (plain text) and try again"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read {what} file ({exc.strerror or exc.__class__.__name__})",
            hint="check the path and the file's permissions",
        ) from None
    doc = _parse(p, text)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{p}: {what} must be a YAML mapping of keys to values, not a {_yaml_kind(doc)}",
            hint="start the file with 'key: value' lines",
        )
    return doc


def validate_config(
    model: type[Model], doc: Mapping[str, Any], source: str, what: str, *, hint: str | None = None
) -> Model:
    """``doc`` validated as ``model``; ``ConfigError`` listing every problem by key path."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(config_problems(source, what, exc), hint=hint) from None


def load_config_file(
    path: str | os.PathLike[str],
    model: type[Model],
    what: str,
    *,
    hint: str | None = None,
    missing_hint: str | None = None,
) -> Model:
    """Read ``path`` and validate it as ``model``: the whole of most loaders."""
    doc = read_config_file(path, what, missing_hint=missing_hint)
    return validate_config(model, doc, str(path), what, hint=hint)


def config_problems(source: str, what: str, exc: ValidationError) -> str:
    """The one error format: ``source: WHAT is not valid`` then ``  - key.path: problem`` lines."""
    lines = [f"{source}: {what} is not valid"]
    for err in exc.errors():
        lines.append(f"  - {key_path(err['loc'])}: {_problem(err)}")
    return "\n".join(lines)


def key_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("keys", 0, "public_key")`` as ``keys[0].public_key``; the empty path is ``(top level)``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def forbids_unknown_keys(model: type[BaseModel]) -> list[str]:
    """The models reachable from ``model``'s fields that would accept an unknown key (ought to be none)."""
    lax: list[str] = []
    seen: set[type[BaseModel]] = set()

    def visit(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        if m.model_config.get("extra") != "forbid":
            lax.append(m.__qualname__)
        for field in m.model_fields.values():
            for inner in _models_in(field.annotation):
                visit(inner)

    visit(model)
    return lax


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def _problem(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return UNKNOWN_KEY
    if err["type"] == "missing":
        return "missing (this key is required)"
    return str(err["msg"]).removeprefix("Value error, ")


class _Repeated(Exception):
    def __init__(self, path: str, key: str, first: int, again: int):
        self.path, self.key, self.first, self.again = path, key, first, again


def _parse(p: Path, text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_keys(node, ())
        return loader.construct_document(node)
    except _Repeated as rep:
        raise ConfigError(
            f"{p}: {rep.path}: the key '{rep.key}' is given twice (lines {rep.first} and {rep.again})",
            hint="keep one of the two; YAML would silently use the last one",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise ConfigError(
            f"{p}: not valid YAML{where}{detail}",
            hint="fix the indentation or quoting at that place",
        ) from None
    finally:
        loader.dispose()


def _refuse_repeated_keys(
    node: yaml.Node, path: tuple[int | str, ...], seen_nodes: set[int] | None = None
) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # an alias of a node already checked (or a recursive one)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                ident = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if ident in seen:
                    raise _Repeated(key_path((*path, key_node.value)), key_node.value, seen[ident], line)
                seen[ident] = line
                _refuse_repeated_keys(value_node, (*path, key_node.value), seen_nodes)
            else:
                _refuse_repeated_keys(value_node, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_repeated_keys(item, (*path, i), seen_nodes)


def _yaml_kind(doc: Any) -> str:
    if isinstance(doc, list):
        return "list"
    if isinstance(doc, str):
        return "single piece of text"
    return type(doc).__name__
