"""Volumes: directories under volumes/<name>/ that outlive the containers using them.

    volumes/<name>/volume.json   name, creation time, whether it is anonymous
    volumes/<name>/_data/        what containers see at the mount point

A named volume appears on first use (`-v NAME:/path`) or with `volume
create`. An anonymous one gets a random 64-hex name, for the image's
Volumes and for `-v /path`, and goes away with its container under `rm -v`
or `run --rm`. A volume that any container lists in its container.json is
in use and cannot be removed. volumes.lock serializes creation and removal
against container creation, so a volume cannot vanish between the check and
the mount.
"""

from __future__ import annotations

import os
import time

from minict.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from minict.fsutil import atomic_write_json, read_json, remove_tree
from minict.runflags import VOLUME_NAME_RE
from minict.store import Store

RECORD = "volume.json"


def volumes_dir(store: Store) -> str:
    path = os.path.join(store.root, "volumes")
    os.makedirs(path, 0o700, exist_ok=True)
    return path


def lock_path(store: Store) -> str:
    return os.path.join(store.root, "volumes.lock")


def validate_name(name: str) -> None:
    if not VOLUME_NAME_RE.match(name) or not name.isascii() or len(name) > 128:
        raise InvalidArgument(f"invalid volume name {name!r}: use letters, digits, '_', '.' and '-', "
                              "at least 2 characters, starting with a letter or digit")


def data_path(store: Store, name: str) -> str:
    return os.path.join(volumes_dir(store), name, "_data")


def ensure(store: Store, name: str | None = None) -> tuple[str, bool]:
    """Return (name, created) for a volume, creating it (anonymous when name is None). Hold lock_path."""
    anonymous = name is None
    if name is None:
        name = os.urandom(32).hex()
    validate_name(name)
    directory = os.path.join(volumes_dir(store), name)
    if os.path.exists(os.path.join(directory, RECORD)):
        return name, False
    remove_tree(directory)  # a half-made volume from a killed create
    building = os.path.join(volumes_dir(store), f".creating-{name}-{os.urandom(4).hex()}")
    os.makedirs(os.path.join(building, "_data"), 0o755)
    atomic_write_json(os.path.join(building, RECORD),
                      {"name": name, "created": time.time(), "anonymous": anonymous}, fsync=False)
    os.rename(building, directory)
    return name, True


def create(store: Store, name: str) -> str:
    from minict.fsutil import file_lock

    validate_name(name)
    with file_lock(lock_path(store)):
        _, created = ensure(store, name)
    if not created:
        raise AlreadyExists(f"volume {name!r} already exists; use it with -v {name}:/path, or choose another name")
    return name


def records(store: Store) -> list[dict]:
    result = []
    for name in sorted(os.listdir(volumes_dir(store))):
        if name.startswith("."):
            continue
        try:
            record = read_json(os.path.join(volumes_dir(store), name, RECORD))
        except (FileNotFoundError, ValueError):
            continue
        record["mountpoint"] = data_path(store, name)
        result.append(record)
    return result


def users(store: Store) -> dict[str, list[str]]:
    """Map each volume name to the containers that use it."""
    result: dict[str, list[str]] = {}
    for name in os.listdir(store.containers):
        if name.startswith("."):
            continue
        try:
            record = read_json(os.path.join(store.containers, name, "container.json"))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            continue
        for volume in record.get("volumes", []):
            result.setdefault(volume["name"], []).append(name)
    return result


def remove(store: Store, names: list[str], force: bool = False) -> list[str]:
    """Remove volumes that no container uses and return their names. The error for a used one names its users."""
    from minict.fsutil import file_lock

    removed = []
    with file_lock(lock_path(store)):
        using = users(store)
        for name in names:
            validate_name(name)
            directory = os.path.join(volumes_dir(store), name)
            if not os.path.exists(os.path.join(directory, RECORD)):
                if force:
                    continue
                raise NotFound(f"no such volume: {name}")
            if name in using:
                raise FailedPrecondition(f"volume {name!r} is in use by container {', '.join(using[name])}; "
                                         "remove the container first")
            _delete(store, name)
            removed.append(name)
    return removed


def _delete(store: Store, name: str) -> None:
    doomed = os.path.join(volumes_dir(store), f".removing-{name}-{os.urandom(4).hex()}")
    os.rename(os.path.join(volumes_dir(store), name), doomed)
    remove_tree(doomed)


def prune(store: Store, everything: bool = False) -> list[str]:
    """Remove unused anonymous volumes, or with `everything` all unused volumes."""
    from minict.fsutil import file_lock

    removed = []
    with file_lock(lock_path(store)):
        using = users(store)
        for record in records(store):
            if record["name"] in using or not (everything or record.get("anonymous")):
                continue
            _delete(store, record["name"])
            removed.append(record["name"])
        for entry in os.listdir(volumes_dir(store)):
            if entry.startswith((".creating-", ".removing-")):
                remove_tree(os.path.join(volumes_dir(store), entry))
    return removed


def remove_anonymous(store: Store, volumes: list[dict]) -> None:
    """Delete a removed container's anonymous volumes that no other container uses."""
    from minict.fsutil import file_lock

    with file_lock(lock_path(store)):
        using = users(store)
        for volume in volumes:
            if volume.get("anonymous") and volume["name"] not in using:
                if os.path.exists(os.path.join(volumes_dir(store), volume["name"])):
                    _delete(store, volume["name"])
