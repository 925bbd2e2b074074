"""Resolve container paths inside a root directory, never through a symlink to the host."""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINKS = 40


def secure_join(root: str, unsafe: str) -> str:
    """Return the host path of `unsafe` as seen from inside `root`.

    Symlinks met on the way are resolved as if `root` were `/`: an absolute
    link restarts at `root`, and ".." never climbs above it. Components that
    do not exist are appended as they are. This is what a process chrooted
    into `root` would see, computed without chroot.
    """
    root = os.path.abspath(root)
    pending = [part for part in unsafe.split("/") if part not in ("", ".")]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"too many symbolic links resolving {unsafe!r} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        for piece in reversed([p for p in target.split("/") if p not in ("", ".")]):
            pending.append(piece)
    return os.path.join(root, *resolved)


def open_in_root(root: str, unsafe: str, flags: int = os.O_PATH) -> int:
    """Open a path inside `root` with O_NOFOLLOW after secure_join, and check where it landed.

    Returns the fd. Raises OSError if the opened file is not below `root`
    (a component was swapped for a symlink between resolving and opening).
    """
    path = secure_join(root, unsafe)
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    real = os.readlink(f"/proc/self/fd/{fd}")
    root_real = os.path.realpath(root)
    if real != root_real and not real.startswith(root_real.rstrip("/") + "/"):
        os.close(fd)
        raise OSError(errno.EXDEV, f"{unsafe!r} resolved to {real}, outside the container root {root_real}")
    return fd
