"""Content store: blobs addressed by digest under blobs/sha256/.

A blob is written to ingest/<hex>.partial under an exclusive flock, hashed
while it arrives, verified against its digest and size, fsynced and renamed
into place. A blob that exists is never fetched again. A partial file left by
a killed pull is resumed by the next one after its bytes are hashed again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from minict.digest import Verifier, parse_digest
from minict.errors import ContentError, NotFound
from minict.fsutil import atomic_write, fsync_directory, removable_lock
from minict.store import Store


class ContentStore:
    def __init__(self, store: Store):
        self.store = store

    def path(self, digest: str) -> str:
        algorithm, encoded = parse_digest(digest)
        if algorithm != "sha256":
            return os.path.join(self.store.root, "blobs", algorithm, encoded)
        return os.path.join(self.store.blobs, encoded)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as file:
                return file.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store; pull the image again") from None

    def write_bytes(self, digest: str, data: bytes) -> None:
        """Store a small blob already held in memory, after checking its digest."""
        verifier = Verifier(digest, len(data), f"blob {digest}")
        verifier.update(data)
        verifier.verify()
        path = self.path(digest)
        if os.path.exists(path):
            return
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, data, mode=0o444)

    @contextmanager
    def ingest(self, digest: str, size: int | None) -> Iterator["Ingest"]:
        """Lock and open the ingest file of `digest`; yields an Ingest to write to.

        Two processes ingesting one digest take turns: the second finds the blob
        committed when it gets the lock (Ingest.done is then true).
        """
        _, encoded = parse_digest(digest)
        lock_path = os.path.join(self.store.ingest, f"{encoded}.lock")
        with removable_lock(lock_path):
            ingest = Ingest(self, digest, size, os.path.join(self.store.ingest, f"{encoded}.partial"))
            try:
                yield ingest
            finally:
                ingest.close()

    def verify(self, digest: str) -> None:
        """Hash a stored blob again and raise ContentError if it changed on disk."""
        algorithm, encoded = parse_digest(digest)
        import hashlib  # loads OpenSSL, which commands that hash nothing skip

        hasher = hashlib.new(algorithm)
        with open(self.path(digest), "rb") as file:
            while chunk := file.read(1 << 20):
                hasher.update(chunk)
        if hasher.hexdigest() != encoded:
            raise ContentError(f"blob {digest} in {self.path(digest)} is corrupt: it hashes to {algorithm}:{hasher.hexdigest()}")

    def list_digests(self) -> list[str]:
        try:
            return [f"sha256:{name}" for name in os.listdir(self.store.blobs) if not name.startswith(".")]
        except FileNotFoundError:
            return []

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass


class Ingest:
    """An open ingest file. `offset` bytes were already there and are hashed."""

    def __init__(self, content: ContentStore, digest: str, size: int | None, partial_path: str):
        self.content = content
        self.digest = digest
        self.size = size
        self.partial_path = partial_path
        self.done = content.exists(digest)
        self.file = None
        self.verifier = Verifier(digest, size, f"blob {digest}")
        self.offset = 0
        if self.done:
            return
        fd = os.open(partial_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.file = os.fdopen(fd, "r+b", buffering=0)
        try:
            while chunk := self.file.read(1 << 20):
                self.verifier.update(chunk)
        except ContentError:
            # The partial file is longer than the blob: start again.
            self.reset()
        self.offset = self.verifier.size

    def read_partial(self) -> Iterator[bytes]:
        """Yield the bytes already in the partial file (to unpack them before resuming)."""
        with open(self.partial_path, "rb") as file:
            remaining = self.offset
            while remaining > 0:
                chunk = file.read(min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def reset(self) -> None:
        """Discard what was written; the server is sending the blob from the start."""
        assert self.file is not None
        self.file.seek(0)
        self.file.truncate()
        self.verifier = Verifier(self.digest, self.size, f"blob {self.digest}")
        self.offset = 0

    def write(self, chunk: bytes | memoryview) -> None:
        assert self.file is not None
        self.verifier.update(chunk)
        self.file.write(chunk)

    def commit(self) -> None:
        """Verify digest and size, then fsync and rename the blob into place.

        On a mismatch the partial file is deleted, so nothing of it is kept.
        """
        assert self.file is not None
        try:
            self.verifier.verify()
        except ContentError:
            self.discard()
            raise
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), 0o444)
        self.file.close()
        self.file = None
        target = self.content.path(self.digest)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        os.rename(self.partial_path, target)
        fsync_directory(os.path.dirname(target))
        self.done = True

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.partial_path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
