"""Listening UNIX socket files that appear atomically and are removed only by their owner."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat

# sun_path holds 108 bytes including the terminating NUL.
MAX_PATH_BYTES = 107


def check_path(path: str) -> None:
    """Raise ValueError when ``path`` does not fit into a UNIX socket address."""
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ValueError('UNIX socket path longer than %d bytes: %s' % (MAX_PATH_BYTES, path))


def bind_listener(path: str, backlog: int) -> tuple[socket.socket, int]:
    """Bind and listen on ``path``, replacing a stale socket file; return the socket and inode."""
    check_path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(errno.EEXIST, 'exists and is not a socket', path)
    # Bind under a temporary name and rename: whoever watches the directory
    # (the directory discovery driver) never sees a socket that refuses connections.
    tmp = os.path.join(os.path.dirname(path) or '.', '.%s.tmp' % secrets.token_hex(4))
    if len(os.fsencode(tmp)) > MAX_PATH_BYTES:
        tmp = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        sock.listen(backlog)
        if tmp != path:
            os.rename(tmp, path)
        sock.setblocking(False)
        inode = os.lstat(path).st_ino
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return sock, inode


def unlink_if_same(path: str, inode: int) -> None:
    """Unlink ``path`` unless it is gone or someone else has bound a new socket there."""
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
