"""Resolve a container user ("name", "uid", "uid:gid", "name:group") from the image's own files.

Runs in the container init after pivot_root, so /etc/passwd is the image's:
a symlink in it resolves inside the container. The files are opened with
O_NONBLOCK and must be regular files, so a FIFO cannot block the start, and
reads stop at MAX_BYTES.
"""

from __future__ import annotations

import os
import stat

MAX_BYTES = 4 << 20


class UserError(Exception):
    """Raised when the user or group cannot be resolved. The message names which."""


class User:
    """A resolved user: ids, home directory and supplementary groups."""

    def __init__(self, uid: int, gid: int, home: str = "/", additional_gids: list[int] | None = None):
        self.uid = uid
        self.gid = gid
        self.home = home
        self.additional_gids = additional_gids or []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"User(uid={self.uid}, gid={self.gid}, home={self.home!r}, additional_gids={self.additional_gids})"


def _read_entries(path: str) -> list[list[str]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = os.read(fd, MAX_BYTES)
    finally:
        os.close(fd)
    entries = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            entries.append(line.split(":"))
    return entries


def _number(text: str) -> int | None:
    if text.isdigit() and len(text) < 11:
        value = int(text)
        return value if value <= 0xFFFFFFFE else None
    return None


def resolve(spec: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> User:
    """Resolve a user spec against the passwd and group files, as docker does."""
    user_part, _, group_part = spec.partition(":")
    if not user_part:
        raise UserError(f"invalid user {spec!r}: the user part is empty")
    users = _read_entries(passwd)
    uid = _number(user_part)
    name = None
    gid = None
    home = "/"
    for entry in users:
        if len(entry) < 7:
            continue
        if (uid is None and entry[0] == user_part) or (uid is not None and _number(entry[2]) == uid):
            name = entry[0]
            uid = _number(entry[2])
            gid = _number(entry[3])
            home = entry[5] or "/"
            break
    if uid is None:
        raise UserError(f"unable to find user {user_part}: no matching entries in passwd file")
    groups = _read_entries(group)
    if group_part:
        gid = _number(group_part)
        if gid is None:
            for entry in groups:
                if len(entry) >= 3 and entry[0] == group_part:
                    gid = _number(entry[2])
                    break
            if gid is None:
                raise UserError(f"unable to find group {group_part}: no matching entries in group file")
    if gid is None:
        gid = 0 if name is None else gid
    if gid is None:
        gid = 0
    additional = []
    if name is not None and not group_part:
        for entry in groups:
            if len(entry) >= 4 and name in entry[3].split(","):
                number = _number(entry[2])
                if number is not None and number != gid and number not in additional:
                    additional.append(number)
    return User(uid=uid, gid=gid, home=home, additional_gids=additional)
