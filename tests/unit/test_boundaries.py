"""The identifier boundary, checked on the source: who may import ``linkage.identifiable``, and who may
name an identifier column.

The rules (written once for people in docs/ARCHITECTURE.md, "Identifier boundary"):

1. Only modules inside ``linkage/identifiable/`` import from it, and from outside only the stage
   functions that run its steps (``flows/stages.py``), the synthetic-region generator
   (``synthetic/``, which invents identifiers and the truth), the tests and the benchmarks. Every
   import counts, also one inside a function.
2. Outside the package, ``flows/``, ``linkage/``, ``ig_policies/`` and ``analysis/`` contain no
   string literal equal to an identifier column name (``linkage.identifiable.IDENTIFIER_COLUMNS``:
   the direct identifiers, the providers' record references and the standardised ``std_`` forms).
   A module that names such a column is handling identifiers and belongs in the package. Token,
   encoding and pseudonym columns (``t_surname``, ``bf_surname``, ``client_pseudonym``) are not
   identifiers and are fine. Two places name these fields without holding any value, and are the
   only exceptions:

   * ``linkage/dataset_config.py``, the schema that maps each provider's columns to the canonical
     field names (read by ingest and validation; it reads no rows);
   * the member values of ``Comparison`` in ``linkage/splink_model/comparisons.py``: the names of
     the model's comparisons (``gamma_postcode``), which compare tokens only.

3. Modules that must work without the package (settings, the linkage config and model, quality,
   the policy code, the analyses) do not load it, even indirectly, when imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from linkage.identifiable import (
    DIRECT_IDENTIFIERS,
    IDENTIFIER_COLUMNS,
    RECORD_REFERENCES,
    STANDARDISED_IDENTIFIERS,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "linkage.identifiable"
PACKAGE_DIR = ROOT / "linkage" / "identifiable"
SOURCE_DIRS = ("flows", "linkage", "ig_policies", "analysis", "synthetic", "benchmarks", "tests")
#: Where an import of the package is allowed from outside it (paths relative to the repository).
IMPORT_ALLOWED = ("flows/stages.py", "synthetic/", "tests/", "benchmarks/")
#: Where the literal rule applies.
LITERAL_CHECKED = ("flows/", "linkage/", "ig_policies/", "analysis/")
SCHEMA_MODULE = "linkage/dataset_config.py"
COMPARISONS_MODULE = "linkage/splink_model/comparisons.py"


def _modules(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _inside_package(path: Path) -> bool:
    return path.is_relative_to(PACKAGE_DIR)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement anywhere in the file names, absolute, with its line."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _imports_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _import_offences(paths: list[Path]) -> list[str]:
    offences = []
    for path in paths:
        rel = _rel(path)
        if _inside_package(path) or rel.startswith(IMPORT_ALLOWED):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        offences += [
            f"{rel}:{line}: imports {name}"
            for line, name in _imported_modules(path, tree)
            if _imports_package(name)
        ]
    return sorted(set(offences))


def _comparison_names(tree: ast.AST) -> set[int]:
    """ids of the string constants that are member values of ``class Comparison``."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Comparison":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
                    allowed.add(id(stmt.value))
    return allowed


def _literal_offences(paths: list[Path]) -> list[str]:
    offences = []
    for path in paths:
        rel = _rel(path)
        if _inside_package(path) or not rel.startswith(LITERAL_CHECKED) or rel == SCHEMA_MODULE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        allowed = _comparison_names(tree) if rel == COMPARISONS_MODULE else set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in IDENTIFIER_COLUMNS
                and id(node) not in allowed
            ):
                offences.append(f"{rel}:{node.lineno}: names the identifier column {node.value!r}")
    return offences


ALL_MODULES = _modules(*SOURCE_DIRS)


def test_the_rules_see_every_module() -> None:
    names = {_rel(p) for p in ALL_MODULES}
    assert {"flows/stages.py", "linkage/identifiable/pseudonymise.py", COMPARISONS_MODULE} <= names
    assert len(names) > 100


def test_only_the_package_the_stages_and_the_generator_import_the_package() -> None:
    offences = _import_offences(ALL_MODULES)
    assert not offences, (
        "these modules import linkage.identifiable, which only its own modules, flows/stages.py, "
        "synthetic/, the tests and the benchmarks may do; call a stage function instead:\n"
        + "\n".join(offences)
    )


def test_no_module_outside_the_package_names_an_identifier_column() -> None:
    offences = _literal_offences(ALL_MODULES)
    assert not offences, (
        "these modules name an identifier column; code that handles identifiers belongs in "
        "linkage/identifiable/:\n" + "\n".join(offences)
    )


def test_the_import_rule_catches_every_form_of_import() -> None:
    forms = [
        "import linkage.identifiable.tokens",
        "from linkage.identifiable import tokens",
        "from linkage import identifiable",
        "def later():\n    from linkage.identifiable.truth import pseudonymised_truth",
    ]
    for text in forms:
        where = ROOT / "analysis" / "any_module.py"  # only its package matters; nothing is written
        names = [name for _, name in _imported_modules(where, ast.parse(text))]
        assert any(_imports_package(n) for n in names), text
    relative = ROOT / "linkage" / "quality.py"
    assert any(
        _imports_package(n)
        for _, n in _imported_modules(relative, ast.parse("from .identifiable import truth"))
    )


def test_the_literal_rule_catches_a_column_name_and_spares_tokens(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('COLUMNS = ["t_surname", "bf_surname", "client_pseudonym", "std_error"]\n')
    tree = ast.parse(probe.read_text())
    hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in IDENTIFIER_COLUMNS]
    assert hits == []
    tree = ast.parse('df.select("std_surname", F.col("nhs_number"))\n')
    hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in IDENTIFIER_COLUMNS]
    assert hits == ["std_surname", "nhs_number"]


def test_the_comparison_names_are_the_only_exception_in_the_model() -> None:
    from linkage.splink_model import Comparison, token_comparisons

    names = [c["output_column_name"] for c in token_comparisons()]
    assert sorted(names) == sorted(c.value for c in Comparison)
    assert not any(c.value in STANDARDISED_IDENTIFIERS or c.value in RECORD_REFERENCES for c in Comparison)


def test_the_vocabulary_covers_the_standardised_columns_and_the_policy() -> None:
    from ig_policies.demo import DEMO_POLICY
    from ig_policies.policy import load_policy
    from linkage.identifiable.standardise import STANDARD_COLUMNS

    assert [c for c in STANDARD_COLUMNS if c.startswith("std_")] == list(STANDARDISED_IDENTIFIERS)
    policy = load_policy(DEMO_POLICY)
    listed = {f for d in policy.datasets.values() for f in d.direct_identifiers}
    assert listed <= set(DIRECT_IDENTIFIERS) | set(RECORD_REFERENCES)


#: Modules that must not load the package, even through what they import.
FREE_OF_IDENTIFIERS = (
    "flows.settings",
    "linkage.bloom",
    "linkage.linkage_config",
    "linkage.dataset_config",
    "linkage.splink_model",
    "linkage.link",
    "linkage.link_backend",
    "linkage.quality",
    "ig_policies.engine",
    "ig_policies.signing",
    "analysis.research_dataset",
    "analysis.equity",
    "analysis.success",
)


def test_importing_a_module_outside_does_not_load_the_package(tmp_path: Path) -> None:
    """One fresh interpreter imports each module in turn and names the first that loads the package."""
    script = tmp_path / "probe.py"  # a file, not ``python -c``: pyspark misreads a nameless script
    script.write_text(
        "import importlib, sys\n"
        f"for module in {FREE_OF_IDENTIFIERS!r}:\n"
        "    importlib.import_module(module)\n"
        f"    loaded = sorted(m for m in sys.modules if m == {PACKAGE!r} or m.startswith({PACKAGE + '.'!r}))\n"
        "    if loaded:\n"
        "        print(module, 'loads', ' '.join(loaded))\n"
        "        break\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_docs_name_the_package_modules_and_the_readme_links_there_instead() -> None:
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = architecture.split("## Identifier boundary", 1)[1].split("\n## ", 1)[0]
    members = sorted(
        {p.relative_to(PACKAGE_DIR).parts[0].removesuffix(".py") for p in PACKAGE_DIR.rglob("*.py")}
        - {"__init__"}
    )
    for member in members:
        assert f"`{member}" in section, f"docs/ARCHITECTURE.md's identifier boundary does not name {member}"
    assert "docs/ARCHITECTURE.md#identifier-boundary" in readme
    for member in members:
        assert f"linkage/identifiable/{member}" not in readme and f"linkage/{member}.py" not in readme
