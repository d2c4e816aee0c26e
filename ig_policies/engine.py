"""The policy engine: the one gate every flow and CLI step passes before it touches data.

``PolicyEngine.load`` accepts a policy only if it is signed by a trusted IG officer, unchanged since
signing and inside its validity window. ``engine.step(...)`` then checks the actor's role, the
datasets, fields and analysis the step needs, and the retention date; it refuses (``PolicyRefused``
naming the rule and what to do) before the step starts, and writes one audit entry per step:
``refused``, ``failed`` (the exception type and message) or ``allowed`` (content hashes of inputs and
outputs, row counts, details). Refusals while loading are audited too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ig_policies.audit import AuditLog
from ig_policies.errors import ConfigError, PolicyRefused
from ig_policies.master_secret import MasterSecret
from ig_policies.policy import Analysis, Dataset, Policy, Role, policy_from_document, read_policy_document
from ig_policies.signing import (
    SignatureCheck,
    TrustStore,
    canonical_hash,
    load_trust_store,
    resolve_trust_store,
    verify_policy_signature,
)
from ig_policies.workspace import Workspace, content_hash

__all__ = ["ACTIONS_AFTER_EXPIRY", "Analysis", "FieldSelection", "PolicyEngine", "Role", "Step"]

_ROLE_NAMES = {
    Role.DATA_PROCESSOR: "a data processor",
    Role.RESEARCHER: "a researcher",
    Role.IG_OFFICER: "an IG officer",
}

#: Actions still allowed once a policy has expired: deleting data must never be blocked.
ACTIONS_AFTER_EXPIRY = frozenset({"retention_enforce"})


@dataclass(frozen=True)
class FieldSelection:
    """How an extract's columns meet the policy: ``kept`` (permitted, in extract order), ``dropped``
    (present but not permitted: ingest removes them and records the names) and ``missing``
    (permitted but absent)."""

    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    missing: tuple[str, ...]


class Step:
    """What a running step tells the audit log. Returned by ``engine.step(...)``."""

    def __init__(self, workspace: Workspace):
        self._workspace = workspace
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[Path] = []
        self._counts: dict[str, int] = {}
        self._details: dict[str, Any] = {}

    def _label(self, path: Path) -> str:
        p = Path(path).resolve()
        try:
            return p.relative_to(self._workspace.root).as_posix()
        except ValueError:
            return str(p)

    def inputs(self, *paths: str | os.PathLike[str]) -> Step:
        """Record input files/directories; hashed now, i.e. as they were read."""
        for path in paths:
            self._inputs.append({"path": self._label(Path(path)), "sha256": content_hash(path)})
        return self

    def outputs(self, *paths: str | os.PathLike[str]) -> Step:
        """Record outputs; hashed when the step ends, i.e. as they were finally written."""
        self._outputs.extend(Path(p) for p in paths)
        return self

    def counts(self, **counts: int) -> Step:
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    value = int(value)  # numpy integers
                except (TypeError, ValueError):
                    raise TypeError(f"count {name} must be an integer, not {type(value).__name__}") from None
            self._counts[name] = value
        return self

    def detail(self, **details: Any) -> Step:
        """Record JSON-serialisable details (never identifiers: names, numbers, postcodes, tokens)."""
        for name, value in details.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise TypeError(f"detail {name} is not JSON-serialisable ({type(value).__name__})") from None
            self._details[name] = value
        return self

    def _record(self, hash_outputs: bool) -> dict[str, Any]:
        outputs = []
        for path in self._outputs:
            digest = content_hash(path) if hash_outputs and path.exists() else None
            outputs.append({"path": self._label(path), "sha256": digest})
        return {"inputs": self._inputs, "outputs": outputs, "counts": self._counts, "details": self._details}


class PolicyEngine:
    """A loaded, verified policy plus the workspace's audit log. Create with ``PolicyEngine.load``."""

    def __init__(
        self,
        policy: Policy,
        policy_hash: str,
        signature: SignatureCheck,
        workspace: Workspace,
        audit: AuditLog,
        today: dt.date | None = None,
        allow_expired: bool = False,
    ):
        self.policy = policy
        self.policy_hash = policy_hash
        self.signature = signature
        self.workspace = workspace
        self.audit = audit
        #: The trust store the policy was verified against; officers' signed decisions use it too.
        self.trust_store: TrustStore | None = None
        self._today = today
        self._allow_expired = allow_expired

    def __repr__(self) -> str:
        return f"PolicyEngine(policy={self.policy.project.id!r}, hash={self.policy_hash[:12]})"

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        policy_path: str | os.PathLike[str],
        workspace: Workspace,
        trust_store: str | os.PathLike[str] | TrustStore | None = None,
        today: dt.date | None = None,
        *,
        master_secret: MasterSecret | None = None,
        actor: str | None = None,
        allow_expired: bool = False,
    ) -> PolicyEngine:
        """Load and verify a signed policy; refuse (and audit the refusal) if it cannot be used.

        ``trust_store`` is a path or a loaded store; without one ``$EHL_TRUST_STORE`` is used, and
        without that the engine refuses (fail closed). ``today`` fixes the date for validity and
        retention checks (tests, re-runs); by default the real date is used at every check.
        ``allow_expired`` is only for ``ehl retention enforce``: it lets an expired policy load, and
        then only actions in ``ACTIONS_AFTER_EXPIRY`` are allowed.
        """
        audit = AuditLog.for_workspace(workspace, master_secret)  # no audit key: fail closed here
        policy_id: str | None = None
        policy_hash: str | None = None

        reading = "trust_store"

        def refuse(exc: PolicyRefused | ConfigError) -> None:
            rule = exc.rule if isinstance(exc, PolicyRefused) else f"invalid_{reading}"
            audit.append(
                actor=actor,
                role=None,
                action="load_policy",
                policy_id=policy_id,
                policy_hash=policy_hash,
                decision="refused",
                rule=rule,
                reason=exc.message,
            )

        try:
            store = trust_store if isinstance(trust_store, TrustStore) else None
            if store is None:
                store = (
                    load_trust_store(trust_store) if trust_store is not None else resolve_trust_store(None)
                )
            reading = "policy"
            doc = read_policy_document(policy_path)
            policy_hash = canonical_hash(doc)
            project = doc.get("project")
            if isinstance(project, dict) and isinstance(project.get("id"), str):
                policy_id = project["id"]
            policy = policy_from_document(doc, source=str(policy_path))
            signature = verify_policy_signature(policy_path, store, document=doc)
            engine = cls(policy, signature.policy_hash, signature, workspace, audit, today, allow_expired)
            engine.trust_store = store
            engine._check_validity(action=None)
        except (PolicyRefused, ConfigError) as exc:
            refuse(exc)
            raise
        return engine

    # ---- questions -------------------------------------------------------------------------

    def today(self) -> dt.date:
        return self._today or dt.date.today()

    def dataset(self, name: str) -> Dataset:
        """The policy entry of a permitted dataset; PolicyRefused (not audited) if not permitted."""
        found = self.policy.resolve_datasets(name)
        if name not in found:
            raise _dataset_refusal([name])
        return found[name]

    def permitted_fields(self, dataset: str) -> tuple[str, ...]:
        """The fields a dataset (by name, or all datasets of a kind) may carry, in policy order."""
        found = self.policy.resolve_datasets(dataset)
        if not found:
            raise _dataset_refusal([dataset])
        fields: list[str] = []
        for d in found.values():
            fields.extend(f for f in d.fields if f not in fields)
        return tuple(fields)

    def field_selection(self, dataset: str, columns: Iterable[str]) -> FieldSelection:
        """Which of an extract's (canonical) columns ingest keeps and which it must drop."""
        permitted = self.permitted_fields(dataset)
        cols = list(columns)
        return FieldSelection(
            kept=tuple(c for c in cols if c in permitted),
            dropped=tuple(c for c in cols if c not in permitted),
            missing=tuple(f for f in permitted if f not in cols),
        )

    def opt_out_list_path(self) -> Path | None:
        """The National Data Opt-out list file in the workspace, or None when the opt-out does not apply."""
        opt = self.policy.national_data_opt_out
        if not opt.applies or opt.list_file is None:
            return None
        return self.workspace.root / opt.list_file

    # ---- checks ----------------------------------------------------------------------------

    def _check_validity(self, action: str | None) -> None:
        today, validity = self.today(), self.policy.validity
        if today < validity.start:
            raise PolicyRefused(
                "not_yet_valid",
                f"The policy {self.policy.project.id} is valid only from {validity.start.isoformat()} "
                f"(today is {today.isoformat()}).",
                hint="wait until the start date, or ask the IG officer whether an earlier start was approved",
            )
        if today > validity.expiry:
            if self._allow_expired and (action is None or action in ACTIONS_AFTER_EXPIRY):
                return
            raise PolicyRefused(
                "expired",
                f"The policy {self.policy.project.id} expired on {validity.expiry.isoformat()}.",
                hint="processing must stop; ask the IG officer for a renewed, signed policy "
                "(retention enforcement still runs: 'ehl retention enforce')",
            )

    def check(
        self,
        actor: str,
        role: Role | str,
        action: str,
        datasets: Iterable[str] = (),
        fields: Iterable[str] | None = None,
        analysis: Analysis | str | None = None,
        reads_linked_data: bool = False,
    ) -> None:
        """Raise PolicyRefused if the step is not allowed (no audit entry: ``step`` writes it)."""
        self._check_validity(action)
        try:
            role = Role(role)
        except ValueError:
            raise PolicyRefused(
                "unknown_role",
                f"'{role}' is not a role; roles are {', '.join(r.value for r in Role)}.",
                hint="this is a programming error in the calling step; report it",
            ) from None
        if actor not in self.policy.users_in_role(role):
            raise PolicyRefused(
                "user_not_in_role",
                f"'{actor}' is not named in the policy as {_ROLE_NAMES[role]}, which '{action}' needs.",
                hint="run the step as a user named in that role (--user / EHL_USER), or ask the IG officer "
                "to add the user to a new signed version of the policy",
            )
        names = list(datasets)
        unknown = [d for d in names if not self.policy.resolve_datasets(d)]
        if unknown:
            raise _dataset_refusal(unknown)
        if fields is not None:
            scope = names or list(self.policy.datasets)
            permitted: set[str] = set()
            for d in scope:
                for ds in self.policy.resolve_datasets(d).values():
                    permitted.update(ds.fields)
            extra = sorted({f for f in fields if f not in permitted})
            if extra:
                raise PolicyRefused(
                    "field_not_permitted",
                    f"Field(s) not permitted for {', '.join(scope)}: {', '.join(extra)}.",
                    hint="use only the fields listed in the policy (data minimisation), or ask the IG officer "
                    "to approve the extra fields in a new signed version",
                )
        if analysis is not None:
            try:
                wanted = Analysis(analysis)
            except ValueError:
                wanted = None
            if wanted is None or wanted not in self.policy.analyses:
                raise PolicyRefused(
                    "analysis_not_permitted",
                    f"The analysis '{analysis}' is not permitted by the policy "
                    f"(permitted: {', '.join(a.value for a in self.policy.analyses) or 'none'}).",
                    hint="run a permitted analysis, or ask the IG officer to approve this one in a new signed version",
                )
        delete_by = self.policy.retention.linked_data_delete_by
        if reads_linked_data and self.today() >= delete_by:
            raise PolicyRefused(
                "retention_passed",
                f"Linked data may not be used on or after {delete_by.isoformat()}, the policy's retention date.",
                hint="the linked and analysis data must now be deleted: an IG officer runs 'ehl retention enforce'",
            )

    # ---- steps -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(
        self,
        actor: str,
        role: Role | str,
        action: str,
        datasets: Iterable[str] = (),
        fields: Iterable[str] | None = None,
        analysis: Analysis | str | None = None,
        reads_linked_data: bool = False,
    ) -> Iterator[Step]:
        """Check, run and audit one step (see the module docstring)."""
        datasets = (datasets,) if isinstance(datasets, str) else tuple(datasets)
        fields = ((fields,) if isinstance(fields, str) else tuple(fields)) if fields is not None else None
        base: dict[str, Any] = {
            "actor": actor,
            "role": str(role.value if isinstance(role, Role) else role),
            "action": action,
            "policy_id": self.policy.project.id,
            "policy_hash": self.policy_hash,
            "datasets": list(datasets),
            "analysis": str(analysis.value if isinstance(analysis, Analysis) else analysis)
            if analysis
            else None,
        }
        try:
            self.check(actor, role, action, datasets, fields, analysis, reads_linked_data)
        except PolicyRefused as exc:
            self.audit.append(**base, decision="refused", rule=exc.rule, reason=exc.message)
            raise
        record = Step(self.workspace)
        try:
            yield record
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                raise
            self.audit.append(
                **base, **record._record(hash_outputs=False), decision="failed", rule=None,
                reason=f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
            raise
        self.audit.append(
            **base, **record._record(hash_outputs=True), decision="allowed", rule=None, reason=""
        )


def _dataset_refusal(names: list[str]) -> PolicyRefused:
    return PolicyRefused(
        "dataset_not_permitted",
        f"Dataset(s) not permitted by the policy: {', '.join(names)}.",
        hint="use only the datasets listed in the policy, or ask the IG officer to approve the dataset "
        "in a new signed version",
    )
