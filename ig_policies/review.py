"""What an IG officer reads before signing: a plain-English summary and a widen/narrow diff.

``describe_policy`` answers "who may do what with which fields until when" without YAML. ``diff``
compares an approved version with a proposed one and classifies every difference as *widens* (more
data, people, analyses or time; weaker disclosure control), *narrows* (the opposite) or *changes*
(neither, but the officer should see it), so a re-approval is an informed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ig_policies.policy import Policy, Role

_ROLE_DUTIES = {
    Role.DATA_PROCESSOR: "data processor: validate, pseudonymise and link the data, build the research dataset",
    Role.RESEARCHER: "researcher: run the permitted analyses on pseudonymised data, request outputs",
    Role.IG_OFFICER: "IG officer: review, release or reject outputs, enforce retention",
}


def _d(day: dt.date) -> str:
    return day.strftime("%d %B %Y").lstrip("0")


def _list(items: Any) -> str:
    items = [str(i) for i in items]
    return ", ".join(items) if items else "none"


def describe_policy(policy: Policy, today: dt.date | None = None) -> str:
    """A plain-English summary of a policy, for the IG officer who reviews or signs it."""
    today = today or dt.date.today()
    p, out, link = policy.project, policy.outputs, policy.linkage
    if today < policy.validity.start:
        status = f"not yet in force (starts in {(policy.validity.start - today).days} days)"
    elif today > policy.validity.expiry:
        status = "EXPIRED: no processing is allowed, only retention enforcement"
    else:
        status = f"in force ({(policy.validity.expiry - today).days} days left)"
    lines = [
        f"Policy '{p.id}' (version {policy.policy_version}): {p.title}",
        "",
        f"Purpose: {p.purpose}",
        f"Legal basis: UK GDPR Article {p.legal_basis.uk_gdpr_article_6} and Article "
        f"{p.legal_basis.uk_gdpr_article_9}; common-law duty of confidentiality: {p.legal_basis.common_law_duty}.",
    ]
    if p.legal_basis.approvals:
        lines.append(f"Approvals: {_list(p.legal_basis.approvals)}.")
    lines += [
        f"Data controllers: {_list(p.data_controllers)}. Data processor: {p.data_processor}.",
        "",
        f"When: processing is allowed from {_d(policy.validity.start)} to {_d(policy.validity.expiry)} "
        f"inclusive; today it is {status}.",
        f"Linked data may be used until the day before {_d(policy.retention.linked_data_delete_by)} "
        "and must be deleted by then ('ehl retention enforce').",
        "",
        "Who (anyone not listed is refused):",
    ]
    for role in Role:
        names = policy.users_in_role(role)
        lines.append(f"  - {_ROLE_DUTIES[role]}: {_list(names) if names else 'nobody'}")
    lines += [
        "",
        "Which data (any other dataset, and any other column of an extract, is refused or dropped):",
    ]
    for name, ds in policy.datasets.items():
        direct = set(ds.direct_identifiers)
        quasi = set(ds.quasi_identifiers)
        other = [f for f in ds.fields if f not in direct and f not in quasi]
        lines.append(f"  - {name} ({ds.kind.value.replace('_', ' ')}), {len(ds.fields)} fields:")
        lines.append(
            f"      direct identifiers (used only to make pseudonyms, then dropped): {_list(ds.direct_identifiers)}"
        )
        lines.append(f"      quasi-identifiers (kept; watched in outputs): {_list(ds.quasi_identifiers)}")
        lines.append(f"      other fields: {_list(other)}")
        lines.append(
            f"      the run stops if more than {ds.max_quarantine_fraction:.0%} of rows fail validation"
        )
    opt = policy.national_data_opt_out
    lines += [
        "",
        (
            f"National Data Opt-out: applies; patients on the list at {opt.list_file} are removed from the "
            "health data before linkage, and the number removed is audited."
            if opt.applies
            else "National Data Opt-out: does NOT apply to this project (the legal basis must justify this)."
        ),
        "",
        f"Analyses permitted: {_list(a.value.replace('_', ' ') for a in policy.analyses)}.",
        "",
        "Outputs leave the TRE only after disclosure control and IG officer release:",
        f"  - counts below {out.min_cell_count} are suppressed; counts are rounded to a multiple of {out.rounding_base}",
        f"  - a total is blocked when its {out.dominance.n} largest contributors make up more than "
        f"{out.dominance.k:.0%} of it; p% rule with p = {out.p_percent:.0%}",
        f"  - models need at least {out.min_residual_df} residual degrees of freedom",
        f"  - zero cells are {'treated as disclosive' if out.zeros_disclosive else 'shown'}",
        "",
        f"Linkage: pairs with match probability at or above {link.match_threshold} are linked; "
        f"{link.clerical_review_band[0]} to {link.clerical_review_band[1]} go to clerical review; "
        f"key version {link.key_version}.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Diff


class Direction(StrEnum):
    WIDENS = "widens"
    NARROWS = "narrows"
    CHANGES = "changes"


@dataclass(frozen=True)
class Change:
    direction: Direction
    key: str
    text: str

    def __str__(self) -> str:
        return f"[{self.direction.value.upper()}] {self.key}: {self.text}"


def _more_is_wider(key: str, old: Any, new: Any, what: str) -> Change | None:
    if old == new:
        return None
    direction = Direction.WIDENS if new > old else Direction.NARROWS
    return Change(direction, key, f"{what} {old} -> {new}")


def _less_is_wider(key: str, old: Any, new: Any, what: str) -> Change | None:
    if old == new:
        return None
    direction = Direction.WIDENS if new < old else Direction.NARROWS
    return Change(direction, key, f"{what} {old} -> {new}")


def _set_changes(key: str, old: Any, new: Any, noun: str, added_widens: bool = True) -> list[Change]:
    old_s, new_s = set(old), set(new)
    add, rem = Direction.WIDENS, Direction.NARROWS
    if not added_widens:
        add, rem = rem, add
    out = []
    added = [x for x in new if x not in old_s]
    removed = [x for x in old if x not in new_s]
    if added:
        out.append(Change(add, key, f"new {noun}: {_list(added)}"))
    if removed:
        out.append(Change(rem, key, f"removed {noun}: {_list(removed)}"))
    return out


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every difference between two policy versions, classified as widens / narrows / changes."""
    changes: list[Change | None] = []
    add = changes.append
    if old.policy_version != new.policy_version:
        add(Change(Direction.CHANGES, "policy_version", f"{old.policy_version} -> {new.policy_version}"))
    for field in ("id", "title", "purpose", "data_processor"):
        a, b = getattr(old.project, field), getattr(new.project, field)
        if a != b:
            add(Change(Direction.CHANGES, f"project.{field}", f"{a!r} -> {b!r}"))
    if old.project.legal_basis != new.project.legal_basis:
        for field in ("uk_gdpr_article_6", "uk_gdpr_article_9", "common_law_duty", "approvals"):
            a, b = getattr(old.project.legal_basis, field), getattr(new.project.legal_basis, field)
            if a != b:
                add(Change(Direction.CHANGES, f"project.legal_basis.{field}", f"{a!r} -> {b!r}"))
    if old.project.data_controllers != new.project.data_controllers:
        changes.extend(
            Change(Direction.CHANGES, c.key, c.text)
            for c in _set_changes(
                "project.data_controllers",
                old.project.data_controllers,
                new.project.data_controllers,
                "data controllers",
            )
        )

    add(_less_is_wider("validity.start", old.validity.start, new.validity.start, "processing may start"))
    add(_more_is_wider("validity.expiry", old.validity.expiry, new.validity.expiry, "policy expires"))
    add(
        _more_is_wider(
            "retention.linked_data_delete_by",
            old.retention.linked_data_delete_by,
            new.retention.linked_data_delete_by,
            "linked data kept until",
        )
    )

    old_users = [f"{u.name} as {u.role.value}" for u in old.users]
    new_users = [f"{u.name} as {u.role.value}" for u in new.users]
    changes.extend(_set_changes("users", old_users, new_users, "users"))

    changes.extend(_set_changes("datasets", list(old.datasets), list(new.datasets), "datasets"))
    for name in [n for n in new.datasets if n in old.datasets]:
        a, b = old.datasets[name], new.datasets[name]
        key = f"datasets.{name}"
        if a.kind != b.kind:
            add(Change(Direction.CHANGES, f"{key}.kind", f"{a.kind.value} -> {b.kind.value}"))
        changes.extend(_set_changes(f"{key}.fields", a.fields, b.fields, "fields"))
        # Un-marking an identifier weakens protection: it would be kept instead of dropped/watched.
        changes.extend(
            _set_changes(
                f"{key}.direct_identifiers",
                a.direct_identifiers,
                b.direct_identifiers,
                "direct identifiers",
                added_widens=False,
            )
        )
        changes.extend(
            _set_changes(
                f"{key}.quasi_identifiers",
                a.quasi_identifiers,
                b.quasi_identifiers,
                "quasi-identifiers",
                added_widens=False,
            )
        )
        add(
            _more_is_wider(
                f"{key}.max_quarantine_fraction",
                a.max_quarantine_fraction,
                b.max_quarantine_fraction,
                "tolerated share of rejected rows",
            )
        )

    oo, no = old.national_data_opt_out, new.national_data_opt_out
    if oo.applies != no.applies:
        add(
            Change(
                Direction.WIDENS if not no.applies else Direction.NARROWS,
                "national_data_opt_out.applies",
                "the National Data Opt-out no longer applies"
                if not no.applies
                else "the National Data Opt-out now applies",
            )
        )
    elif oo.list_file != no.list_file:
        add(Change(Direction.CHANGES, "national_data_opt_out.list_file", f"{oo.list_file} -> {no.list_file}"))

    changes.extend(
        _set_changes("analyses", [a.value for a in old.analyses], [a.value for a in new.analyses], "analyses")
    )

    o, n = old.outputs, new.outputs
    add(_less_is_wider("outputs.min_cell_count", o.min_cell_count, n.min_cell_count, "minimum cell count"))
    add(_less_is_wider("outputs.rounding_base", o.rounding_base, n.rounding_base, "rounding base"))
    add(_less_is_wider("outputs.dominance.n", o.dominance.n, n.dominance.n, "dominance rule n"))
    add(_more_is_wider("outputs.dominance.k", o.dominance.k, n.dominance.k, "dominance rule k"))
    add(
        _less_is_wider(
            "outputs.reviews_required",
            o.reviews_required,
            n.reviews_required,
            "IG officer reviews per release",
        )
    )
    add(_less_is_wider("outputs.p_percent", o.p_percent, n.p_percent, "p% rule p"))
    add(
        _less_is_wider("outputs.min_residual_df", o.min_residual_df, n.min_residual_df, "minimum residual df")
    )
    if o.zeros_disclosive != n.zeros_disclosive:
        add(
            Change(
                Direction.WIDENS if not n.zeros_disclosive else Direction.NARROWS,
                "outputs.zeros_disclosive",
                "zero cells may now be shown"
                if not n.zeros_disclosive
                else "zero cells are now treated as disclosive",
            )
        )

    ol, nl = old.linkage, new.linkage
    add(_less_is_wider("linkage.match_threshold", ol.match_threshold, nl.match_threshold, "match threshold"))
    if ol.clerical_review_band != nl.clerical_review_band:
        add(
            Change(
                Direction.CHANGES,
                "linkage.clerical_review_band",
                f"{list(ol.clerical_review_band)} -> {list(nl.clerical_review_band)}",
            )
        )
    if ol.key_version != nl.key_version:
        add(
            Change(
                Direction.CHANGES,
                "linkage.key_version",
                f"{ol.key_version} -> {nl.key_version} (all tokens and pseudonyms will be re-derived)",
            )
        )
    return [c for c in changes if c is not None]


def format_diff(changes: list[Change]) -> str:
    if not changes:
        return "No differences in any value: the two versions allow exactly the same."
    order = {Direction.WIDENS: 0, Direction.NARROWS: 1, Direction.CHANGES: 2}
    widens = sum(c.direction == Direction.WIDENS for c in changes)
    narrows = sum(c.direction == Direction.NARROWS for c in changes)
    head = f"{len(changes)} difference(s): {widens} widen(s), {narrows} narrow(s) what is allowed."
    return "\n".join([head, *(str(c) for c in sorted(changes, key=lambda c: order[c.direction]))])
