"""minict check: verify the state directory and, with --repair, bring it back to a consistent state.

What it checks, holding gc.lock exclusively so no pull or create runs meanwhile:

- blobs hash to their names;
- snapshots have their record, naming the chain ID of their directory;
- image records name blobs and snapshots that exist;
- containers have their records, and their images' snapshots exist;
- no half-created or half-removed container directory is left;
- no state records a running container whose init is gone;
- no half-created or half-removed volume is left.

Repairs only delete or settle: a corrupt blob, a broken snapshot, an image
record whose content is gone (pull it again), leftovers of killed commands.
Containers are never deleted; one whose image is gone is reported.
"""

from __future__ import annotations

import os
import re

from minict.errors import ContentError
from minict.fsutil import file_lock, read_json, remove_tree
from minict.store import Store

_HEX = re.compile(r"^[0-9a-f]{64}$")


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.repaired: list[str] = []
        self.notes: list[str] = []  # facts about the host, not the store: they do not fail the check

    def found(self, message: str, fixed: bool) -> None:
        (self.repaired if fixed else self.problems).append(message)


def check(store: Store, repair: bool = False) -> Report:
    report = Report()
    with file_lock(store.gc_lock):
        broken_blobs = _check_blobs(store, repair, report)
        broken_chains = _check_snapshots(store, repair, report)
        _check_images(store, repair, report, broken_blobs, broken_chains)
        _check_containers(store, repair, report)
        _check_cgroups(store, repair, report)
        _check_volumes(store, repair, report)
    return report


def _check_blobs(store: Store, repair: bool, report: Report) -> set[str]:
    from minict.content import ContentStore

    content = ContentStore(store)
    broken = set()
    for name in sorted(os.listdir(store.blobs)):
        path = os.path.join(store.blobs, name)
        if name.startswith(".tmp-"):
            if repair:
                remove_tree(path)
            report.found(f"leftover temporary blob {path}" + (" removed" if repair else ""), repair)
            continue
        if not _HEX.match(name):
            report.found(f"unexpected file {path} among the blobs" + (" removed" if repair else ""), repair)
            if repair:
                remove_tree(path)
            continue
        digest = f"sha256:{name}"
        try:
            content.verify(digest)
        except ContentError as error:
            broken.add(digest)
            if repair:
                content.delete(digest)
            report.found(str(error) + ("; deleted" if repair else ""), repair)
    return broken


def _check_snapshots(store: Store, repair: bool, report: Report) -> set[str]:
    from minict.snapshots import SNAPSHOT_RECORD, Snapshots

    snapshots = Snapshots(store, mode="")
    broken = set()
    for name in sorted(os.listdir(store.snapshots)):
        if name.startswith("."):
            continue
        chain_id = f"sha256:{name}"
        path = os.path.join(store.snapshots, name)
        problem = None
        try:
            record = read_json(os.path.join(path, SNAPSHOT_RECORD))
            if not isinstance(record, dict) or record.get("chain_id") != chain_id:
                problem = f"snapshot {path} has a record for another chain ID"
            elif not os.path.isdir(os.path.join(path, "fs")):
                problem = f"snapshot {path} has no fs directory"
        except (FileNotFoundError, NotADirectoryError):
            problem = f"snapshot {path} has no record"
        except ValueError:
            problem = f"snapshot {path} has an unreadable record"
        if problem:
            broken.add(chain_id)
            if repair:
                snapshots.remove(chain_id)
            report.found(problem + ("; removed" if repair else ""), repair)
    if repair:
        removed = snapshots.cleanup_stale()
        if removed:
            report.found(f"{removed} temporary snapshot directories of killed pulls removed", True)
    return broken


def _check_images(store: Store, repair: bool, report: Report, broken_blobs: set[str],
                  broken_chains: set[str]) -> None:
    from minict.content import ContentStore
    from minict.images import delete_record, familiar_name, list_records
    from minict.snapshots import Snapshots

    content = ContentStore(store)
    snapshots = Snapshots(store, mode="")
    for record in list_records(store):
        missing = []
        for digest in [record["digest"], record["config"]["digest"]] + [layer["digest"] for layer in record["layers"]]:
            if digest in broken_blobs or not content.exists(digest):
                missing.append(f"blob {digest}")
        for layer in record["layers"]:
            if layer["chain_id"] in broken_chains or not snapshots.exists(layer["chain_id"]):
                missing.append(f"snapshot {layer['chain_id']}")
        if missing:
            name = familiar_name(record)
            if repair:
                delete_record(store, record)
            report.found(f"image {name} lacks {', '.join(missing)}"
                         + ("; its record was removed, so pull it again" if repair else "; pull it again"), repair)


def _check_containers(store: Store, repair: bool, report: Report) -> None:
    from minict.containers import CONTAINER_RECORD, _remove_stale
    from minict.snapshots import Snapshots
    from minict.state import is_running, read_state, settle

    snapshots = Snapshots(store, mode="")
    names = set()
    for entry in sorted(os.listdir(store.containers)):
        if entry.endswith(".lock"):
            continue
        for prefix in (".creating-", ".removing-"):
            if entry.startswith(prefix):
                names.add(entry[len(prefix):].rsplit("-", 1)[0])
    for name in sorted(names):
        removed = _remove_stale(store, name) if repair else 0
        report.found(f"leftovers of a killed create or rm of container {name!r}" + (" removed" if removed else ""),
                     bool(removed))
    for name in sorted(os.listdir(store.containers)):
        if name.startswith("."):
            continue
        directory = os.path.join(store.containers, name)
        try:
            record = read_json(os.path.join(directory, CONTAINER_RECORD))
            read_json(os.path.join(directory, "config.json"))
        except (FileNotFoundError, ValueError, NotADirectoryError):
            report.found(f"container {name!r} has no readable record or config.json; remove it with minict rm -f {name}",
                         False)
            continue
        for layer in record.get("image", {}).get("layers", []):
            if not snapshots.exists(layer["chain_id"]):
                report.found(f"container {name!r} uses snapshot {layer['chain_id']}, which is missing; "
                             f"remove it with minict rm -f {name}", False)
                break
        state = read_state(directory)
        if state.get("status") in ("running", "paused") and not is_running(state):
            if repair:
                state = settle(directory, state)
            fixed = state.get("status") not in ("running", "paused")
            report.found(f"container {name!r} was recorded as running, but its init is gone"
                         + ("; recorded as exited" if fixed else ""), fixed)


def _check_cgroups(store: Store, repair: bool, report: Report) -> None:
    """Find /minict/<id> cgroups whose container is gone, as a killed rm or start leaves them."""
    from minict.runtime.cgroups import CgroupError, detect, open_cgroup

    try:
        layout = detect()
    except (CgroupError, OSError):
        return
    known = set()
    for name in os.listdir(store.containers):
        try:
            known.add(read_json(os.path.join(store.containers, name, "container.json"))["id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    found = set()
    for mount in layout[1].values():
        try:
            found.update(entry for entry in os.listdir(os.path.join(mount, "minict")) if _HEX.match(entry))
        except FileNotFoundError:
            continue
    for container_id in sorted(found - known):
        cgroup = open_cgroup(f"/minict/{container_id}", layout)
        pids = cgroup.pids()
        if pids:
            # Another state directory on this host may own it, so its processes are only reported.
            report.notes.append(f"cgroup /minict/{container_id} belongs to no container of this state directory and "
                                f"holds processes {', '.join(map(str, pids[:5]))}; if no other state directory owns "
                                "it, kill them and run minict check --repair again")
            continue
        if repair:
            try:
                cgroup.remove(timeout=1)
                report.repaired.append(f"empty cgroup /minict/{container_id} of no container removed")
                continue
            except CgroupError:
                pass
        report.notes.append(f"empty cgroup /minict/{container_id} belongs to no container of this state directory"
                            + ("" if repair else "; --repair removes it"))


def _check_volumes(store: Store, repair: bool, report: Report) -> None:
    from minict.volumes import lock_path

    directory = os.path.join(store.root, "volumes")
    if not os.path.isdir(directory):
        return
    with file_lock(lock_path(store)):
        for entry in sorted(os.listdir(directory)):
            if entry.startswith((".creating-", ".removing-")):
                if repair:
                    remove_tree(os.path.join(directory, entry))
                report.found(f"leftover volume directory {entry}" + (" removed" if repair else ""), repair)
