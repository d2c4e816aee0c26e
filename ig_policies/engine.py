"""The policy engine: the one gate every flow and CLI step passes before it touches data.

``PolicyEngine.load`` accepts a policy only if it is signed by a trusted IG officer, unchanged since
signing and inside its validity window. ``engine.step(...)`` then checks the actor's role, the
datasets, fields and analysis the step needs, and the retention date; it refuses (``PolicyRefused``
naming the rule and what to do) before the step starts, and writes one audit entry per step:
``refused``, ``failed`` (the exception type and message) or ``allowed`` (content hashes of inputs and
outputs, row counts, details). Refusals while loading are audited too.

The audit log fails closed: a step's outputs are written in full to staging paths beside their
final places (``step.stage(final)``), and the engine renames them into place only once the
closing entry is written. If that entry cannot be written, nothing is renamed, the staging is
removed and the step ends with ``AuditUnavailable`` (exit 4): the log then shows the step as
started and never finished, and nothing on disk says otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ig_policies.audit import AuditLog, AuditSettings
from ig_policies.deployment import Deployment, load_deployment
from ig_policies.errors import (
    AuditUnavailable,
    ConfigError,
    EhlError,
    PolicyRefused,
    TamperedError,
    environment_problem,
)
from ig_policies.identity import Identity, current_identity
from ig_policies.policy import Analysis, Dataset, Policy, Role, policy_from_document, read_policy_document
from ig_policies.signing import (
    TRUST_STORE_ENV,
    SignatureCheck,
    TrustStore,
    canonical_hash,
    load_trust_store,
    verify_policy_signature,
)
from ig_policies.workspace import Workspace, content_hash, put_in_place, staging_folder

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


@dataclass(frozen=True)
class _Staged:
    """One output of a step, written in full at ``staged`` and renamed to ``final`` on commit."""

    staged: Path
    final: Path
    keep_on_failure: bool


class Step:
    """What a running step tells the audit log, and the outputs it has staged. Returned by
    ``engine.step(...)``."""

    def __init__(self, workspace: Workspace):
        self._workspace = workspace
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[Path] = []
        self._counts: dict[str, int] = {}
        self._details: dict[str, Any] = {}
        self._staged: dict[Path, _Staged] = {}
        self._folders: list[Path] = []
        self._tag = secrets.token_hex(4)  # several steps of one run stage beside the same folder

    def stage(self, final: str | os.PathLike[str], *, keep_on_failure: bool = False) -> Path:
        """Where to write the output ``final`` in full; it is put in place only after the audit log
        has recorded the step.

        The path is in this step's staging folder beside ``final`` (``.staging-<pid>-<tag>/``, 0700,
        in the same zone and filesystem, so committing is a rename, never a copy). Write a file or
        a whole directory (e.g. Spark's Parquet output) there, and read it back there while the
        step runs. The output is recorded (``outputs``) and hashed where it was staged. With
        ``keep_on_failure`` it is also put in place after a ``failed`` entry (e.g. the quarantine
        tables that say why validation stopped); otherwise a failed step leaves nothing.
        """
        final = Path(final)
        key = final.resolve()
        if key in self._staged:
            raise ValueError(f"{self._label(final)} is already staged by this step")
        folder = staging_folder(final.parent, self._tag)
        if folder not in self._folders:
            self._folders.append(folder)
        staged = folder / final.name
        self._staged[key] = _Staged(staged, final, keep_on_failure)
        self._outputs.append(final)
        return staged

    def staged(self, final: str | os.PathLike[str]) -> Path:
        """Where ``final`` is being written by this step (``final`` itself if it is not staged)."""
        found = self._staged.get(Path(final).resolve())
        return found.staged if found is not None else Path(final)

    def _adopt(self, inner: Step) -> None:
        """Take over the staged outputs of a step run inside this one: they commit with this step."""
        self._staged.update(inner._staged)
        self._folders.extend(f for f in inner._folders if f not in self._folders)

    def _commit(self, only_kept: bool = False) -> None:
        """Rename the staged outputs into place (after the audit entry), then remove the staging.

        The renames follow one another: a crash between two leaves some outputs new and some as
        they were (plus ``.old-<pid>`` leftovers the next start-up removes); the stage ledger is
        written only after this returns, so a resume runs the stage again.
        """
        try:
            for item in self._staged.values():
                if only_kept and not item.keep_on_failure:
                    continue
                if item.staged.exists() or item.staged.is_symlink():
                    try:
                        put_in_place(item.staged, item.final)
                    except OSError as exc:  # the entry is written; the ledger will not claim it
                        raise environment_problem(exc, str(item.final.parent), "write") from None
        finally:
            self._discard()

    def _discard(self) -> None:
        """Remove this step's staging folders and whatever is still in them."""
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)

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
            written = self.staged(path)
            digest = content_hash(written) if hash_outputs and written.exists() else None
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
        *,
        deployment: Deployment,
        identity: Identity,
        trust_store: TrustStore,
    ):
        self.policy = policy
        self.deployment = deployment
        self.identity = identity
        self.trust_store = trust_store
        self.policy_hash = policy_hash
        self.signature = signature
        self.workspace = workspace
        self.audit = audit
        self._today = today
        self._allow_expired = allow_expired
        self._open_steps: list[Step] = []  # a step opened inside another commits with it

    def __repr__(self) -> str:
        return f"PolicyEngine(policy={self.policy.project.id!r}, hash={self.policy_hash[:12]})"

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        policy_path: str | os.PathLike[str] | None,
        workspace: Workspace,
        trust_store: str | os.PathLike[str] | None = None,
        today: dt.date | None = None,
        *,
        audit: AuditLog | AuditSettings | None = None,
        actor: str | None = None,
        allow_expired: bool = False,
        deployment: Deployment | None = None,
        identity: Identity | None = None,
    ) -> PolicyEngine:
        """Load and verify a signed policy; refuse (and audit the refusal) if it cannot be used.

        The machine's deployment (``deployment``, else ``ig_policies.deployment.load_deployment``)
        fixes the trust store and the policy: ``trust_store`` (or ``$EHL_TRUST_STORE``) and
        ``policy_path`` may only name the same files, and default to them. ``today`` fixes the date
        for validity and retention checks (tests, re-runs); by default the real date is used at
        every check. ``allow_expired`` is only for ``ehl retention enforce``: it lets an expired
        policy load, and then only actions in ``ACTIONS_AFTER_EXPIRY`` are allowed. ``audit`` is the
        workspace's audit log or its writer's settings; by default the deployment's writer, and in
        a DEMO deployment without one the DEMO writer beside the workspace
        (``AuditLog.for_workspace``). ``identity`` is only for the output gate acting for the
        researcher at the other end of its socket (``ig_policies.identity.peer_identity``): it is
        refused (rule ``peer_identity_only_for_gate``) unless this process runs as the gate's
        account named by the deployment.
        """
        deployment = deployment if deployment is not None else load_deployment()
        own = current_identity(demo=deployment.demo)
        if isinstance(audit, AuditSettings):
            audit = AuditLog.open(workspace, audit)
        elif audit is None:
            audit = deployment.audit_log(workspace)
        policy_id: str | None = None
        policy_hash: str | None = None

        reading = "trust_store"
        identity = identity if identity is not None else own

        def refuse(exc: PolicyRefused | ConfigError) -> None:
            rule = exc.rule if isinstance(exc, PolicyRefused) else f"invalid_{reading}"
            audit.append(
                actor=actor if actor is not None or identity is own else identity.account,
                role=None,
                action="load_policy",
                policy_id=policy_id,
                policy_hash=policy_hash,
                decision="refused",
                rule=rule,
                reason=exc.message,
                **_mode(identity),
            )

        try:
            identity = _acting_identity(deployment, own, identity)
            requested = trust_store or os.environ.get(TRUST_STORE_ENV) or None
            store = load_trust_store(deployment.trust_store_path(Path(requested) if requested else None))
            reading = "policy"
            chosen = deployment.policy_path(Path(policy_path) if policy_path is not None else None)
            if chosen is None:
                raise PolicyRefused(
                    "no_policy",
                    "No policy given: every step needs the signed policy it runs under.",
                    hint="pass --policy FILE or set EHL_POLICY (the demo uses ig_policies/configs/demo/policy.yaml)",
                )
            doc = read_policy_document(chosen)
            policy_hash = canonical_hash(doc)
            project = doc.get("project")
            if isinstance(project, dict) and isinstance(project.get("id"), str):
                policy_id = project["id"]
            policy = policy_from_document(doc, source=str(chosen))
            signature = verify_policy_signature(chosen, store, document=doc)
            engine = cls(
                policy, signature.policy_hash, signature, workspace, audit, today, allow_expired,
                deployment=deployment, identity=identity, trust_store=store,
            )  # fmt: skip
            engine._check_validity(action=None)
        except (PolicyRefused, ConfigError) as exc:
            refuse(exc)
            raise
        return engine

    def actor_for(self, role: Role | str) -> str:
        """The name the authenticated account acts under in ``role`` (its own, or the DEMO persona)."""
        return self.identity.name_for(role)

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
        self._check_actor(actor, role, action)
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

    def _check_actor(self, actor: str, role: Role, action: str) -> None:
        """The actor must be the authenticated account (or, in DEMO mode, one of the policy's
        personas), named by the policy in ``role`` and a member of the role's OS group."""
        identity = self.identity
        if identity.demo:
            if actor not in self.policy.users_in_role(role):
                raise PolicyRefused(
                    "user_not_in_role",
                    f"'{actor}' is not named in the policy as {_ROLE_NAMES[role]}, which '{action}' needs (DEMO).",
                    hint="in the demo, the local account acts under the demo policy's names for each role",
                )
            return
        if actor != identity.account:
            raise PolicyRefused(
                "not_authenticated_account",
                f"The step was asked to act as '{actor}', but this command runs as the account "
                f"'{identity.account}': the service acts only as the account that is logged in.",
                hint=f"log in as '{actor}' to act as them; nobody can act under another person's name",
            )
        if actor not in self.policy.users_in_role(role):
            raise PolicyRefused(
                "user_not_in_role",
                f"The account '{actor}' is not named in the policy as {_ROLE_NAMES[role]}, which '{action}' needs.",
                hint="run the step from an account the policy names in that role, or ask the IG officer "
                "to add the account to a new signed version of the policy",
            )
        group = getattr(self.deployment.groups, role.value) if self.deployment.groups else None
        if group is None or group not in identity.groups:
            raise PolicyRefused(
                "not_in_role_group",
                f"The account '{actor}' is not in the OS group '{group}' that this machine's deployment "
                f"gives {_ROLE_NAMES[role]}s, which '{action}' needs.",
                hint="the TRE administrator adds the account to the group (and the policy must name it too)",
            )

    # ---- steps -----------------------------------------------------------------------------

    def _entry(
        self,
        actor: str,
        role: Role | str | None,
        action: str,
        datasets: Iterable[str] = (),
        analysis: Analysis | str | None = None,
    ) -> dict[str, Any]:
        """The fields every entry of a step carries (who, as what, doing what, under which policy)."""
        return {
            "actor": actor,
            "role": str(role.value if isinstance(role, Role) else role) if role is not None else None,
            "action": action,
            "policy_id": self.policy.project.id,
            "policy_hash": self.policy_hash,
            "datasets": list(datasets),
            "analysis": str(analysis.value if isinstance(analysis, Analysis) else analysis)
            if analysis
            else None,
            **_mode(self.identity),
        }

    def staged(self, final: str | os.PathLike[str]) -> Path:
        """Where an open step (innermost first) is writing ``final``; ``final`` itself if none is.

        For code that reads back, inside an outer step, what an inner step staged (an analysis
        reading the status of the output request it has just made).
        """
        for record in reversed(self._open_steps):
            found = record.staged(final)
            if found != Path(final):
                return found
        return Path(final)

    def require(self, actor: str, role: Role | str, action: str) -> None:
        """Refuse (audited, as ``step`` would) before a step touches anything on disk; allow
        silently, leaving the step's own entries to ``step``."""
        try:
            self.check(actor, role, action)
        except PolicyRefused as exc:
            self.record_refusal(actor, role, action, exc)
            raise

    def record_refusal(
        self,
        actor: str,
        role: Role | str | None,
        action: str,
        refusal: PolicyRefused,
        datasets: Iterable[str] = (),
        analysis: Analysis | str | None = None,
    ) -> None:
        """Write the ``refused`` entry for ``refusal`` (its rule and message); the caller raises it.

        ``role`` is None for a refusal that is about no single role (e.g. an account holding none).
        """
        base = self._entry(actor, role, action, datasets, analysis)
        self.audit.append(**base, decision="refused", rule=refusal.rule, reason=refusal.message)

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
        """Check, run and audit one step, and commit what it staged (see the module docstring).

        In order: ``refused`` (and PolicyRefused) if the policy does not allow it; ``started``; the
        step's work, writing its outputs to ``step.stage(final)``; ``allowed`` with the outputs'
        hashes; only then the renames into place. A step opened inside another (an analysis
        requesting its outputs) writes its own entries and hands its staged outputs to the outer
        step, which commits them after its own ``allowed`` entry. If the work raises, ``failed`` is
        written and only outputs staged with ``keep_on_failure`` are put in place. If a closing
        entry cannot be written, nothing is put in place and ``AuditUnavailable`` (exit 4) says so.
        """
        datasets = (datasets,) if isinstance(datasets, str) else tuple(datasets)
        fields = ((fields,) if isinstance(fields, str) else tuple(fields)) if fields is not None else None
        try:
            self.check(actor, role, action, datasets, fields, analysis, reads_linked_data)
        except PolicyRefused as exc:
            self.record_refusal(actor, role, action, exc, datasets, analysis)
            raise
        base = self._entry(actor, role, action, datasets, analysis)
        started = self.audit.append(**base, decision="started", rule=None, reason="")  # fails closed
        record = Step(self.workspace)
        outer = self._open_steps[-1] if self._open_steps else None
        self._open_steps.append(record)
        try:
            try:
                yield record
            except BaseException as exc:
                if isinstance(exc, GeneratorExit):
                    record._discard()
                    raise
                self._close(
                    record, base, action, decision="failed", reason=f"{type(exc).__name__}: {exc}",
                    started_seq=started["seq"], hash_outputs=False,
                )  # fmt: skip
                record._commit(only_kept=True)
                raise
            self._close(record, base, action, decision="allowed", reason="", started_seq=started["seq"])
            if outer is not None:
                outer._adopt(record)
            else:
                record._commit()
        finally:
            self._open_steps.remove(record)

    def _close(
        self,
        record: Step,
        base: dict[str, Any],
        action: str,
        *,
        decision: str,
        reason: str,
        started_seq: int,
        hash_outputs: bool = True,
    ) -> None:
        """Write a step's closing entry; if it cannot be written, discard what the step staged."""
        try:
            content = record._record(hash_outputs=hash_outputs)
        except BaseException:
            record._discard()
            raise
        try:
            self.audit.append(
                **base, **content, decision=decision, rule=None, reason=reason, started_seq=started_seq
            )
        except TamperedError:
            record._discard()  # a log that was altered is its own, louder failure (exit 5)
            raise
        except Exception as exc:
            record._discard()
            raise _not_committed(action, exc) from exc


def _not_committed(action: str, exc: Exception) -> AuditUnavailable:
    """The plain message when a step's closing audit entry could not be written."""
    cause = exc.message if isinstance(exc, EhlError) else f"{type(exc).__name__}: {exc}"
    return AuditUnavailable(
        f"Nothing that the step '{action}' produced was kept: its closing audit entry could not be "
        f"written, and by the rule 'audit_before_commit' no output is put in place before the audit "
        f"log records it. {cause}",
        hint="make the audit log writable again (start the audit writer, free disk space, or lift a "
        "read-only or immutable flag on the audit folder), then run the command again; the audit log "
        "shows this step as started and never finished",
    )


def _acting_identity(deployment: Deployment, own: Identity, claimed: Identity) -> Identity:
    """Who the engine acts for: this process's own account, or, in the output gate's process
    only, the peer the kernel named at the other end of its socket (``peer_identity``).

    A claimed identity with this process's own uid is this process (its account and groups as
    the system says, not as claimed); any other is refused outside the gate's account.
    """
    if claimed is own or claimed.uid == own.uid:
        return own
    gate = deployment.gate.account if deployment.gate is not None else None
    if not claimed.peer or gate is None or own.account != gate:
        raise PolicyRefused(
            "peer_identity_only_for_gate",
            f"This process runs as '{own.account}' and asked to act as '{claimed.account}': only the "
            f"output gate's account ({gate or 'none in this deployment'}) may act for another account, "
            "and only for the one at the other end of its socket.",
            hint="run the command as yourself; nobody can act under another person's name",
        )
    return claimed


def _mode(identity: Identity) -> dict[str, Any]:
    """What every audit entry records about how the actor was authenticated: DEMO, or nothing."""
    return {"mode": "DEMO"} if identity.demo else {}


def _dataset_refusal(names: list[str]) -> PolicyRefused:
    return PolicyRefused(
        "dataset_not_permitted",
        f"Dataset(s) not permitted by the policy: {', '.join(names)}.",
        hint="use only the datasets listed in the policy, or ask the IG officer to approve the dataset "
        "in a new signed version",
    )
