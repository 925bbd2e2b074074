"""Image records under images/, and garbage collection of what no record uses.

An image record maps a reference to the manifest pulled for it, with what a
container needs to start without reading the manifest again: the config
digest and each layer's digest, diff_id and chain ID. Records are small JSON
files written by rename, one per reference, so pulls of different tags never
contend.
"""

from __future__ import annotations

import os

from minict.errors import FailedPrecondition, InvalidArgument, NotFound
from minict.fsutil import atomic_write_json, file_lock, read_json, remove_tree
from minict.log import get_logger
from minict.reference import Reference, parse_reference
from minict.store import Store



# The bytes that image record file names keep as they are: urllib.parse.quote(name, safe=":@")
# gives the same names, but importing urllib.parse costs a container start about 2 ms.
_KEPT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~:@")


def record_file_name(name: str) -> str:
    """Percent-encode an image name into the file name of its record, such as docker.io%2Flibrary%2Falpine:3.20."""
    return "".join(chr(byte) if byte in _KEPT else f"%{byte:02X}" for byte in name.encode()) + ".json"


def _record_path(store: Store, name: str) -> str:
    return os.path.join(store.images, record_file_name(name))


def save_record(store: Store, record: dict) -> None:
    atomic_write_json(_record_path(store, record["name"]), record)


def list_records(store: Store) -> list[dict]:
    records = []
    try:
        names = sorted(os.listdir(store.images))
    except FileNotFoundError:
        return []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            record = read_json(os.path.join(store.images, name))
        except (OSError, ValueError) as error:
            get_logger(__name__).warning("skipping unreadable image record %s: %s", name, error)
            continue
        if isinstance(record, dict) and "name" in record:
            records.append(record)
    return records


def familiar_name(record: dict) -> str:
    return parse_reference(record["name"]).familiar()


def find_record(store: Store, text: str) -> dict:
    """Return the record for a reference, a familiar name, or a (short) image ID.

    The image ID is the config digest, as docker shows it.
    """
    try:
        reference: Reference | None = parse_reference(text)
    except InvalidArgument:
        reference = None
    if reference is not None:
        try:
            record = read_json(_record_path(store, str(reference)))
            if isinstance(record, dict):
                return record
        except FileNotFoundError:
            pass
    bare = text.removeprefix("sha256:")
    if len(bare) >= 4 and all(c in "0123456789abcdef" for c in bare):
        matches = [r for r in list_records(store) if r["config"]["digest"].removeprefix("sha256:").startswith(bare)]
        ids = {r["config"]["digest"] for r in matches}
        if len(ids) == 1:
            return matches[0]
        if len(ids) > 1:
            raise InvalidArgument(f"image ID {text!r} is ambiguous: it matches {len(ids)} images; give more digits")
    if reference is not None and reference.digest:
        for record in list_records(store):
            if record["digest"] == reference.digest and parse_reference(record["name"]).repository == reference.repository:
                return record
    raise NotFound(f"image {text!r} not found; pull it with: minict pull {text}")


def delete_record(store: Store, record: dict) -> None:
    try:
        os.unlink(_record_path(store, record["name"]))
    except FileNotFoundError:
        pass


def container_references(store: Store) -> list[dict]:
    """Return the image part of every container record (what each container keeps alive)."""
    found = []
    try:
        names = os.listdir(store.containers)
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(store.containers, name, "container.json")
        try:
            record = read_json(path)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            get_logger(__name__).warning("container record %s is unreadable (%s); keeping all content", path, error)
            raise FailedPrecondition(f"container record {path} is unreadable; run minict check") from error
        if isinstance(record, dict) and isinstance(record.get("image"), dict):
            found.append(dict(record["image"], container=record.get("name", name)))
    return found


def collect_garbage(store: Store) -> dict:
    """Delete blobs and snapshots that no image record and no container uses.

    Holds gc.lock exclusively, which pulls and container creation hold shared,
    so nothing is deleted that a running pull is about to record.
    """
    from minict.content import ContentStore
    from minict.snapshots import Snapshots

    removed = {"blobs": 0, "snapshots": 0}
    with file_lock(store.gc_lock):
        keep_blobs: set[str] = set()
        keep_chains: set[str] = set()
        for record in list_records(store) + container_references(store):
            keep_blobs.add(record["digest"])
            if record.get("index_digest"):
                keep_blobs.add(record["index_digest"])
            keep_blobs.add(record["config"]["digest"])
            for layer in record["layers"]:
                keep_blobs.add(layer["digest"])
                keep_chains.add(layer["chain_id"])
        content = ContentStore(store)
        for digest in content.list_digests():
            if digest not in keep_blobs:
                content.delete(digest)
                removed["blobs"] += 1
        snapshots = Snapshots(store, mode="")
        for chain_id in snapshots.list_chain_ids():
            if chain_id not in keep_chains:
                snapshots.remove(chain_id)
                removed["snapshots"] += 1
        snapshots.cleanup_stale()
    return removed


def remove_image(store: Store, text: str, force: bool = False) -> dict:
    """Delete an image record, then garbage-collect. Raises if a container uses it, unless forced."""
    record = find_record(store, text)
    users = [c["container"] for c in container_references(store) if c.get("digest") == record["digest"]]
    if users and not force:
        raise FailedPrecondition(
            f"image {familiar_name(record)} is used by container {', '.join(sorted(users))}; "
            "remove the container first, or use --force to remove the tag only"
        )
    delete_record(store, record)
    removed = collect_garbage(store)
    return dict(removed, name=record["name"])

