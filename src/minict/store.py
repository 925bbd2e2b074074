"""Layout of the state root. Everything minict keeps is a file below it:

    blobs/sha256/<hex>          verified content: manifests, indexes, configs, layers
    ingest/<hex>.partial        a blob being downloaded (resumed by the next pull)
    images/<reference>.json     image records: reference -> manifest, config, layers
    snapshots/<chain-id-hex>/   one unpacked layer each (fs/ and snapshot.json)
    containers/<name>/          one directory per container
    auth.json                   credentials saved by `minict login`
    snapshotter                 "overlay" or "native", chosen on first use
    gc.lock                     shared by writers, exclusive for garbage collection
"""

from __future__ import annotations

import os
from collections import namedtuple

from minict.fsutil import makedirs

DEFAULT_ROOT = "/var/lib/minict"


def default_root() -> str:
    return os.environ.get("MINICT_DIR") or DEFAULT_ROOT


class Store(namedtuple("Store", "root")):
    """The folders of a state directory; a named tuple, so it loads without dataclasses."""

    __slots__ = ()

    @property
    def blobs(self) -> str:
        return os.path.join(self.root, "blobs", "sha256")

    @property
    def ingest(self) -> str:
        return os.path.join(self.root, "ingest")

    @property
    def images(self) -> str:
        return os.path.join(self.root, "images")

    @property
    def snapshots(self) -> str:
        return os.path.join(self.root, "snapshots")

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    @property
    def gc_lock(self) -> str:
        return os.path.join(self.root, "gc.lock")

    def ensure(self) -> None:
        """Create the state root (mode 0700) and its folders."""
        from minict.errors import InvalidArgument

        try:
            makedirs(self.root, 0o700)
            os.chmod(self.root, 0o700)
            for path in (self.blobs, self.ingest, self.images, self.snapshots, self.containers):
                makedirs(path, 0o700)
        except OSError as error:
            raise InvalidArgument(
                f"cannot create the state directory {self.root}: {error.strerror}; choose another with --root "
                "or $MINICT_DIR"
            ) from error


def open_store(root: str | None = None, create: bool = True) -> Store:
    store = Store(os.path.abspath(root or default_root()))
    if create:
        store.ensure()
    return store
