"""Filesystem helpers: atomic writes, advisory locks and safe directory creation."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager



def atomic_write(path: str, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    Readers see either the old file or the whole new one, never a partial write.
    """
    directory = os.path.dirname(path)
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.rename(temporary, path)
    if fsync:
        fsync_directory(directory)


def atomic_write_json(path: str, value: object, mode: int = 0o644, fsync: bool = True) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True).encode() + b"\n", mode, fsync)


def read_json(path: str) -> object:
    with open(path, "rb") as file:
        return json.loads(file.read())


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: str, mode: int = 0o700) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)


@contextmanager
def file_lock(path: str, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold a flock on `path` (created when missing) for the duration of the block.

    Yields False instead of blocking when `blocking` is false and another
    process holds the lock. The kernel drops the lock when the holder dies, so a
    killed minict never leaves a lock behind.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            operation |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, operation)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and not blocking:
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


@contextmanager
def removable_lock(path: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` and delete the lock file on exit.

    A waiter that wakes up holding the lock of an already deleted file finds
    that the path now names another inode (or none) and locks again, so two
    processes never both believe they hold the lock.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            if current.st_ino != os.fstat(fd).st_ino:
                continue
            try:
                yield
            finally:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return
        finally:
            os.close(fd)


def copy_tree(source: str, target: str) -> None:
    """Copy the contents of `source` into the existing directory `target`, keeping
    owners, modes, xattrs, hardlinks and symlinks (cp -a, with reflinks where the
    filesystem has them)."""
    import subprocess

    result = subprocess.run(["cp", "-a", "--reflink=auto", source + "/.", target + "/"], capture_output=True, text=True)
    if result.returncode != 0:
        from minict.errors import MinictError

        raise MinictError(f"copying {source} to {target} failed: {result.stderr.strip()}")


def remove_tree(path: str) -> None:
    """Remove a file or directory tree; a missing path is not an error.

    shutil.rmtree does not follow symlinks, so a hostile tree cannot make it
    delete anything outside `path`. A directory without subdirectories, such
    as a minict-runc state directory, is removed without it: importing shutil
    (with bz2 and lzma) costs about 3 ms of each minict-runc run.
    """
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if not _remove_flat_directory(path):
                import shutil

                shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_flat_directory(path: str) -> bool:
    """Remove a directory whose entries are all files or links, and return True.

    Returns False, with nothing removed, when an entry is a directory, and
    False when an entry appeared after the listing (the listed files are gone).
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with os.scandir(fd) as entries:
            names = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    return False
                names.append(entry.name)
        for name in names:
            os.unlink(name, dir_fd=fd)  # a symlink is removed, never followed
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError as error:
        if error.errno != errno.ENOTEMPTY:
            raise
        return False  # something was added meanwhile: shutil.rmtree removes the rest
    return True