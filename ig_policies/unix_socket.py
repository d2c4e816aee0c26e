"""The Unix-socket services that run under their own accounts: who is calling, and the listening loop.

The audit writer (``ehl audit serve``) and the output gate (``ehl gate serve``) are each the only
holder of a key, and both learn their caller from the kernel rather than from anything the caller
says. They share one way of listening: a socket born 0660 (no moment when others can connect),
given to the group whose accounts may call, answered one connection at a time until SIGTERM or
Ctrl-C, and removed when the service stops.
"""

from __future__ import annotations

import grp
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ig_policies.errors import ConfigError


def peer_credentials(conn: socket.socket) -> tuple[int, int]:
    """The uid and gid of the process at the other end of a Unix socket, from the kernel (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, gid = struct.unpack("3i", creds)
    return uid, gid


def serve_unix_socket(
    socket_path: str | os.PathLike[str],
    handle: Callable[[socket.socket], None],
    *,
    socket_name: str,
    group: str | None = None,
    group_hint: str,
    ready: Callable[[], Any] | None = None,
) -> None:
    """Listen on ``socket_path`` (mode 0660, group ``group``) and give each connection to ``handle``.

    ``socket_name`` names the socket in the refusal when ``group`` does not exist (``group_hint`` says
    which group to pass); ``ready`` is called once the socket accepts connections. Runs until
    SIGTERM or SIGINT, one connection at a time, and removes the socket when it stops.
    """
    path = Path(socket_path)
    gid = None
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(
                f"The group {group!r} for the {socket_name} does not exist.", hint=group_hint
            ) from None
    if path.exists() or path.is_socket():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # the socket is born 0660: no moment when others can connect
    try:
        server.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    if gid is not None:
        os.chown(path, -1, gid)
    server.listen(16)

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        if ready is not None:
            ready()
        while True:
            conn, _ = server.accept()
            with conn:
                handle(conn)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        path.unlink(missing_ok=True)
