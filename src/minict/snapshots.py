"""Layer snapshots: each layer unpacked once into snapshots/<chain-id-hex>/fs.

A snapshot is keyed by its chain ID (the OCI image spec's hash of the layer's
diff_id and its parents' chain), so every image and container that shares a
layer stack shares its directories. Two snapshotters exist:

* overlay: fs/ contains the layer alone, whiteouts in overlayfs form; a rootfs is
  an overlay mount with the snapshots as lowerdirs (the kernel merges them).
* native: fs/ holds the full tree up to that layer, copied from the parent
  snapshot; a rootfs is a copy. Used where overlayfs is missing or cannot use
  the state root (overlay on overlay, for example).

A snapshot is built in snapshots/.tmp-*/ and renamed into place once its
diff_id has been verified, so a directory named after a chain ID is complete.
"""

from __future__ import annotations

import json
import os
import time

from minict.errors import MinictError
from minict.fsutil import atomic_write_json, copy_tree, file_lock, makedirs, read_json, remove_tree
from minict.store import Store
from minict.unpack import NATIVE, OVERLAY

SNAPSHOT_RECORD = "snapshot.json"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Return the chain ID of each layer: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    import hashlib  # here, not at the top: it loads OpenSSL, which a container start does not need

    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def _hex(chain_id: str) -> str:
    return chain_id.split(":", 1)[1]


def overlay_works(directory: str) -> bool:
    """Try an overlay mount with a whiteout below `directory`, in a private mount namespace.

    Runs in a forked child so the host's mount table is never touched.
    """
    from minict.linux import syscalls

    probe = os.path.join(directory, f".overlay-probe-{os.urandom(16).hex()}")
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.makedirs(os.path.join(probe, name))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                syscalls.unshare(syscalls.CLONE_NEWNS)
                syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
                os.mknod(os.path.join(probe, "lower", "gone"), 0o020000, os.makedev(0, 0))
                syscalls.mount(
                    "overlay", os.path.join(probe, "merged"), "overlay", 0,
                    f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work",
                )
                code = 0
            except OSError:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0
    except OSError:
        return False
    finally:
        remove_tree(probe)


def choose_snapshotter(store: Store) -> str:
    """Return the snapshotter of this state root, deciding and recording it on first use.

    $MINICT_SNAPSHOTTER (overlay or native) overrides the probe on first use.
    The choice is kept in the file `snapshotter`, because existing snapshots
    only work with the snapshotter that made them.
    """
    path = os.path.join(store.root, "snapshotter")
    try:
        with open(path) as file:
            chosen = file.read().strip()
        if chosen in (OVERLAY, NATIVE):
            return chosen
    except FileNotFoundError:
        pass
    requested = os.environ.get("MINICT_SNAPSHOTTER")
    if requested:
        if requested not in (OVERLAY, NATIVE):
            raise MinictError(f"invalid MINICT_SNAPSHOTTER={requested!r}: use overlay or native")
        chosen = requested
    else:
        chosen = OVERLAY if overlay_works(store.snapshots) else NATIVE
    with open(path + ".tmp", "w") as file:
        file.write(chosen + "\n")
    os.rename(path + ".tmp", path)
    return chosen


class Snapshots:
    def __init__(self, store: Store, mode: str):
        self.store = store
        self.mode = mode

    def path(self, chain_id: str) -> str:
        return os.path.join(self.store.snapshots, _hex(chain_id))

    def fs(self, chain_id: str) -> str:
        return os.path.join(self.path(chain_id), "fs")

    def exists(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self.path(chain_id), SNAPSHOT_RECORD))

    def record(self, chain_id: str) -> dict:
        return read_json(os.path.join(self.path(chain_id), SNAPSHOT_RECORD))  # type: ignore[return-value]

    def list_chain_ids(self) -> list[str]:
        try:
            names = os.listdir(self.store.snapshots)
        except FileNotFoundError:
            return []
        return [f"sha256:{name}" for name in names if not name.startswith(".")]

    def prepare(self) -> "PreparedSnapshot":
        """Create an empty temporary snapshot directory, locked until committed or removed."""
        return PreparedSnapshot(self)

    def remove(self, chain_id: str) -> None:
        """Delete a snapshot: first rename it away, so no reader sees half a tree."""
        path = self.path(chain_id)
        doomed = os.path.join(self.store.snapshots, f".tmp-remove-{_hex(chain_id)}-{os.urandom(4).hex()}")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        remove_tree(doomed)

    def cleanup_stale(self) -> int:
        """Remove temporary snapshot directories left by killed processes; return how many."""
        removed = 0
        try:
            names = os.listdir(self.store.snapshots)
        except FileNotFoundError:
            return 0
        for name in names:
            if not name.startswith(".tmp-") or name.endswith(".lock"):
                continue
            lock = os.path.join(self.store.snapshots, name + ".lock")
            with file_lock(lock, blocking=False) as acquired:
                if not acquired:
                    continue  # a live pull owns it
                remove_tree(os.path.join(self.store.snapshots, name))
                removed += 1
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
        return removed


class PreparedSnapshot:
    """A snapshot under construction in snapshots/.tmp-<uuid>/ (fs/ inside)."""

    def __init__(self, snapshots: Snapshots):
        import fcntl

        self.snapshots = snapshots
        name = f".tmp-{os.urandom(16).hex()}"
        self.path = os.path.join(snapshots.store.snapshots, name)
        self.lock_path = self.path + ".lock"
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        makedirs(self.path, 0o700)
        self.fs = os.path.join(self.path, "fs")
        os.mkdir(self.fs, 0o755)

    def copy_from(self, parent_fs: str) -> None:
        """Fill fs/ with a copy of the parent snapshot (native snapshotter)."""
        copy_tree(parent_fs, self.fs)

    def commit(self, chain_id: str, record: dict) -> bool:
        """Rename into place; return False when another process committed it first."""
        record = dict(record, chain_id=chain_id, snapshotter=self.snapshots.mode, created=time.time())
        atomic_write_json(os.path.join(self.path, SNAPSHOT_RECORD), record)
        target = self.snapshots.path(chain_id)
        try:
            os.rename(self.path, target)
            committed = True
        except OSError as error:
            if not os.path.exists(os.path.join(target, SNAPSHOT_RECORD)):
                raise MinictError(f"cannot commit snapshot {chain_id}: {error}") from error
            committed = False
            remove_tree(self.path)
        self._release()
        return committed

    def discard(self) -> None:
        remove_tree(self.path)
        self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = -1
