"""Who is acting: the authenticated OS account running this process, never a typed name.

Inside a TRE the platform authenticates people (an OS account; single sign-on in front of a web
page). The service binds every action to that account: the policy lists accounts by name and role,
and the deployment names the OS group of each role, so acting in a role needs both the policy's
word and the administrator's group membership. Nothing a caller types (an option, an environment
variable) can change the account, because it comes from the kernel (``getuid``).

In a DEMO deployment the one local account acts in all three roles, under the demo policy's
persona names (``demo-processor``, ``demo-researcher``, ``demo-ig-officer``), so the synthetic demo
runs on a bare machine; every audit entry it writes says DEMO.

The output gate acts for another account: the researcher at the other end of its Unix socket.
``peer_identity`` learns that account from the kernel (``SO_PEERCRED``), never from what the
caller sends, and the policy engine accepts such an identity only in a process running as the
gate's own account (``PolicyEngine.load(identity=...)``), so no other process can claim to act
for someone else.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
from dataclasses import dataclass

from ig_policies.policy import Role
from ig_policies.unix_socket import peer_credentials

#: The demo policy's persona per role: the names a DEMO deployment's one account acts under.
DEMO_PERSONAS: dict[Role, str] = {
    Role.DATA_PROCESSOR: "demo-processor",
    Role.RESEARCHER: "demo-researcher",
    Role.IG_OFFICER: "demo-ig-officer",
}


@dataclass(frozen=True)
class Identity:
    """The account this process runs as, its groups, and whether it acts in DEMO mode."""

    account: str
    uid: int
    groups: frozenset[str]
    demo: bool = False
    #: learnt from a Unix socket's peer credentials (the output gate acting for its caller)
    peer: bool = False

    def name_for(self, role: Role | str) -> str:
        """The name this process acts under in ``role``: the account, or the DEMO persona."""
        return DEMO_PERSONAS[Role(role)] if self.demo else self.account

    def describe(self) -> str:
        if self.demo:
            return f"DEMO: the local account '{self.account}' acts in all three roles"
        return f"account '{self.account}'"


def account_name(uid: int) -> str:
    """The account name of ``uid`` (its number when the system has no name for it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_names(uid: int, extra_gids: tuple[int, ...] = ()) -> frozenset[str]:
    """The names of the groups an account belongs to (primary and supplementary)."""
    gids = set(extra_gids)
    try:
        entry = pwd.getpwuid(uid)
        gids.add(entry.pw_gid)
        gids.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except KeyError:
        pass
    names = set()
    for gid in gids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def current_identity(demo: bool = False) -> Identity:
    """The authenticated identity of this process (real uid, and the groups the kernel gave it)."""
    uid = os.getuid()
    return Identity(
        account=account_name(uid),
        uid=uid,
        groups=group_names(uid, (os.getgid(), *os.getgroups())),
        demo=demo,
    )


def peer_identity(conn: socket.socket, demo: bool = False) -> Identity:
    """The account at the other end of a connected Unix socket, from the kernel (``SO_PEERCRED``).

    Its groups are the account's groups in the system's group database (the kernel's list for the
    peer process is not available over the socket), so a group the administrator removed the
    account from no longer counts, even for a process started before.
    """
    uid, gid = peer_credentials(conn)
    return Identity(account=account_name(uid), uid=uid, groups=group_names(uid, (gid,)), demo=demo, peer=True)
