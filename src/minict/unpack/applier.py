"""Apply one layer tar to a snapshot directory, inside a chrooted child process.

The parent decompresses the layer and writes the tar stream into a pipe. A
child forked for the layer chroots into the snapshot directory and extracts
with libarchive, so every path, symlink and hardlink it meets resolves inside
the snapshot and nothing on the host can be reached. On top of that, each entry
is checked before it is written:

* names are relative, with no ".." component (else the layer is rejected);
* no parent of an entry is a symlink or a non-directory written by this layer;
* hardlinks point to a file this layer already wrote, and are made with
  linkat() without following symlinks, so no later chmod goes through a link;
* xattrs in the trusted.overlay namespace are dropped, because they would
  change how overlayfs reads the lower layers.

Whiteouts become what the snapshotter needs. For "overlay" (one directory per
layer, stacked as lowerdirs) `.wh.NAME` becomes a 0:0 character device NAME and
`.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory. For
"native" (each snapshot a full copy of its parent) they delete the paths.

Children are forked before the pull starts its download threads, because a
fork from a threaded process may copy a lock some other thread holds.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import stat

from minict.errors import LayerError

from minict.unpack import NATIVE, OVERLAY  # noqa: F401 (re-exported for pull)

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
OVERLAY_XATTR_PREFIX = b"trusted.overlay."
PIPE_SIZE = 1 << 20

_TYPE_MASK = 0o170000
_REG, _LNK, _SOCK, _CHR, _BLK, _DIR, _FIFO = 0o100000, 0o120000, 0o140000, 0o020000, 0o060000, 0o040000, 0o010000


def _display(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def clean_name(raw: bytes, what: str = "entry") -> bytes:
    """Return the entry name relative to the snapshot root, or raise LayerError.

    "./a//b/" becomes "a/b". Absolute names and any ".." component are
    rejected. The root itself ("." or "./") becomes b"".
    """
    if raw.startswith(b"/"):
        raise LayerError(f"layer {what} {_display(raw)!r} has an absolute name; layers must use relative names")
    parts = [part for part in raw.split(b"/") if part not in (b"", b".")]
    if b".." in parts:
        raise LayerError(f"layer {what} {_display(raw)!r} contains '..'; a layer may not name paths outside its root")
    if b"\0" in raw:
        raise LayerError(f"layer {what} {_display(raw)!r} contains a NUL byte")
    return b"/".join(parts)


class _Libarchive:
    """The few libarchive calls the applier makes, bound once per process."""

    def __init__(self):
        from libarchive import ffi

        self.ffi = ffi
        lib = ffi.libarchive
        self.read_extract2 = lib.archive_read_extract2
        self.read_extract2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.read_extract2.restype = ctypes.c_int
        self.read_next_header2 = lib.archive_read_next_header2
        self.read_next_header2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.read_next_header2.restype = ctypes.c_int
        self.read_open_fd = lib.archive_read_open_fd
        self.read_open_fd.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
        self.read_open_fd.restype = ctypes.c_int
        self.error_string = lib.archive_error_string
        self.error_string.argtypes = [ctypes.c_void_p]
        self.error_string.restype = ctypes.c_char_p
        self.entry_filetype = lib.archive_entry_filetype
        self.entry_filetype.argtypes = [ctypes.c_void_p]
        self.entry_filetype.restype = ctypes.c_uint
        self.entry_pathname = lib.archive_entry_pathname
        self.entry_pathname.argtypes = [ctypes.c_void_p]
        self.entry_pathname.restype = ctypes.c_char_p
        self.entry_copy_pathname = lib.archive_entry_copy_pathname
        self.entry_copy_pathname.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.entry_copy_pathname.restype = None
        self.entry_hardlink = lib.archive_entry_hardlink
        self.entry_hardlink.argtypes = [ctypes.c_void_p]
        self.entry_hardlink.restype = ctypes.c_char_p
        self.entry_symlink = lib.archive_entry_symlink
        self.entry_symlink.argtypes = [ctypes.c_void_p]
        self.entry_symlink.restype = ctypes.c_char_p
        self.xattr_reset = lib.archive_entry_xattr_reset
        self.xattr_reset.argtypes = [ctypes.c_void_p]
        self.xattr_reset.restype = ctypes.c_int
        self.xattr_next = lib.archive_entry_xattr_next
        self.xattr_next.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                    ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        self.xattr_next.restype = ctypes.c_int
        self.xattr_clear = lib.archive_entry_xattr_clear
        self.xattr_clear.argtypes = [ctypes.c_void_p]
        self.xattr_clear.restype = None
        self.xattr_add = lib.archive_entry_xattr_add_entry
        self.xattr_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
        self.xattr_add.restype = None

    def error(self, archive_p) -> str:
        message = self.error_string(archive_p)
        return message.decode("utf-8", "replace") if message else "unknown libarchive error"

    def drop_overlay_xattrs(self, entry_p) -> int:
        """Remove trusted.overlay.* xattrs from an entry; return how many were dropped."""
        if self.xattr_reset(entry_p) == 0:
            return 0
        kept = []
        dropped = 0
        name = ctypes.c_char_p()
        value = ctypes.c_void_p()
        size = ctypes.c_size_t()
        while self.xattr_next(entry_p, ctypes.byref(name), ctypes.byref(value), ctypes.byref(size)) == 0:
            if name.value.startswith(OVERLAY_XATTR_PREFIX):
                dropped += 1
            else:
                kept.append((name.value, ctypes.string_at(value, size.value) if value.value else b""))
        if dropped:
            self.xattr_clear(entry_p)
            for key, data in kept:
                self.xattr_add(entry_p, key, data, len(data))
        return dropped


# libarchive's own checks, kept on as a second line behind the checks below.
_EXTRACT_FLAGS = (
    0x0001  # OWNER: numeric uid and gid from the archive
    | 0x0002  # PERM: modes including setuid, setgid and sticky bits
    | 0x0004  # TIME
    | 0x0010  # UNLINK: replace, never write into, an existing file (it may be a hardlink)
    | 0x0080  # XATTR (security.capability among them)
    | 0x0100  # SECURE_SYMLINKS
    | 0x0200  # SECURE_NODOTDOT
    | 0x1000  # SPARSE
    | 0x10000  # SECURE_NOABSOLUTEPATHS
)


class _LayerWriter:
    """Per-entry logic of the applier. Runs inside the child, with the cwd at the snapshot root."""

    def __init__(self, mode: str):
        self.mode = mode
        self.created: set[bytes] = set()
        self.directories: set[bytes] = {b""}
        self.entries = 0

    def _from_this_layer(self, path: bytes) -> bool:
        # In overlay mode the directory contains this layer only.
        return self.mode == OVERLAY or path in self.created

    def _forget_tree(self, path: bytes) -> None:
        prefix = path + b"/"
        self.directories = {d for d in self.directories if d != path and not d.startswith(prefix)}

    def prepare_parents(self, name: bytes, display: bytes) -> None:
        """Make every parent of `name` a real directory, or reject the entry."""
        parts = name.split(b"/")[:-1]
        prefix = b""
        for part in parts:
            prefix = part if not prefix else prefix + b"/" + part
            if prefix in self.directories:
                continue
            try:
                info = os.lstat(prefix)
            except FileNotFoundError:
                os.mkdir(prefix, 0o755)
                self.created.add(prefix)
                self.directories.add(prefix)
                continue
            if stat.S_ISDIR(info.st_mode):
                self.directories.add(prefix)
                continue
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a directory"
            if self._from_this_layer(prefix):
                raise LayerError(
                    f"layer entry {_display(display)!r}: its parent {_display(prefix)!r} is {kind} in the same layer; "
                    "writing through it is not allowed"
                )
            # A lower layer's symlink or file at a path this layer uses as a
            # directory: the overlay view would show this layer's directory.
            os.unlink(prefix)
            os.mkdir(prefix, 0o755)
            self.created.add(prefix)
            self.directories.add(prefix)

    def replace_existing(self, name: bytes, new_is_dir: bool) -> None:
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            if new_is_dir:
                return
            shutil.rmtree(name)
            self._forget_tree(name)
        else:
            os.unlink(name)

    def whiteout(self, name: bytes, display: bytes) -> None:
        parent, _, base = name.rpartition(b"/")
        if base == OPAQUE_MARKER:
            self.opaque(parent, display)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk and the like) has no meaning here
        target = base[len(WHITEOUT_PREFIX):]
        if target in (b"", b".", b".."):
            raise LayerError(f"layer whiteout {_display(display)!r} names no valid file")
        path = parent + b"/" + target if parent else target
        if self.mode == OVERLAY:
            self.prepare_parents(path, display)
            self.replace_existing(path, new_is_dir=False)
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            self.created.add(path)
            return
        if not self._is_real_directory(parent):
            return  # the parent is gone or not a directory, so there is nothing to delete
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)
            self._forget_tree(path)
        else:
            os.unlink(path)
        self.created.discard(path)

    def _is_real_directory(self, path: bytes) -> bool:
        prefix = b""
        for part in path.split(b"/") if path else []:
            prefix = part if not prefix else prefix + b"/" + part
            try:
                if not stat.S_ISDIR(os.lstat(prefix).st_mode):
                    return False
            except FileNotFoundError:
                return False
        return True

    def opaque(self, directory: bytes, display: bytes) -> None:
        if directory:
            self.prepare_parents(directory + b"/x", display)
            try:
                info = os.lstat(directory)
            except FileNotFoundError:
                os.mkdir(directory, 0o755)
                self.created.add(directory)
                info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode):
                self.replace_existing(directory, new_is_dir=True)
                os.mkdir(directory, 0o755)
                self.created.add(directory)
            self.directories.add(directory)
        if self.mode == OVERLAY:
            os.setxattr(directory or b".", b"trusted.overlay.opaque", b"y", follow_symlinks=False)
            return
        for child in os.listdir(directory or b"."):
            path = directory + b"/" + child if directory else child
            if path in self.created:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
                self._forget_tree(path)
            else:
                os.unlink(path)

    def hardlink(self, name: bytes, target_raw: bytes, display: bytes) -> None:
        target = clean_name(target_raw, "hardlink target of " + repr(_display(display)))
        if not target:
            raise LayerError(f"layer hardlink {_display(display)!r} points to the layer root")
        if not self._is_real_directory(target.rpartition(b"/")[0]):
            raise LayerError(
                f"layer hardlink {_display(display)!r} -> {_display(target_raw)!r}: the target's parent is not a "
                "directory of this layer (it may be a symbolic link)"
            )
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            raise LayerError(
                f"layer hardlink {_display(display)!r} -> {_display(target_raw)!r}: the target is not in this layer"
            ) from None
        if stat.S_ISDIR(info.st_mode):
            raise LayerError(f"layer hardlink {_display(display)!r} -> {_display(target_raw)!r} points to a directory")
        if target == name:
            return
        self.prepare_parents(name, display)
        self.replace_existing(name, new_is_dir=False)
        os.link(target, name, follow_symlinks=False)
        self.created.add(name)


_LIBRARY: _Libarchive | None = None


def _library() -> _Libarchive:
    """Bind libarchive once. Appliers call this before they fork: after the chroot
    the child cannot import anything."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _Libarchive()
    return _LIBRARY


def apply_tar_fd(fd: int, mode: str) -> dict:
    """Extract the tar stream on `fd` into the current directory. Returns counters."""
    lib = _library()
    ffi = lib.ffi
    writer = _LayerWriter(mode)
    read_p = ffi.read_new()
    write_p = ffi.write_disk_new()
    entry_p = ffi.entry_new()
    dropped_xattrs = 0
    try:
        ffi.read_support_format_tar(read_p)
        ffi.read_support_filter_none(read_p)
        if lib.read_open_fd(read_p, fd, 1 << 16) != 0:
            raise LayerError(f"cannot read the layer stream: {lib.error(read_p)}")
        ffi.write_disk_set_options(write_p, _EXTRACT_FLAGS)
        while True:
            status = lib.read_next_header2(read_p, entry_p)
            if status == 1:  # ARCHIVE_EOF
                break
            if status < -20:
                raise LayerError(f"invalid tar data after {writer.entries} entries: {lib.error(read_p)}")
            writer.entries += 1
            raw = lib.entry_pathname(entry_p) or b""
            name = clean_name(raw)
            if not name:
                continue  # the root directory's own entry
            components = name.split(b"/")
            if any(part.startswith(WHITEOUT_PREFIX) for part in components[:-1]):
                raise LayerError(f"layer entry {_display(raw)!r} has a whiteout name as a directory component")
            if components[-1].startswith(WHITEOUT_PREFIX):
                writer.whiteout(name, raw)
                continue
            hardlink = lib.entry_hardlink(entry_p)
            if hardlink is not None:
                writer.hardlink(name, hardlink, raw)
                continue
            kind = lib.entry_filetype(entry_p) & _TYPE_MASK
            if kind == _SOCK:
                continue
            if kind not in (_REG, _LNK, _CHR, _BLK, _DIR, _FIFO):
                raise LayerError(f"layer entry {_display(raw)!r} has unknown file type {kind:o}")
            writer.prepare_parents(name, raw)
            writer.replace_existing(name, new_is_dir=kind == _DIR)
            dropped_xattrs += lib.drop_overlay_xattrs(entry_p)
            lib.entry_copy_pathname(entry_p, name)
            status = lib.read_extract2(read_p, entry_p, write_p)
            if status < -20:  # below ARCHIVE_WARN: the entry failed
                raise LayerError(f"cannot extract layer entry {_display(raw)!r}: {lib.error(write_p)}")
            writer.created.add(name)
            if kind == _DIR:
                writer.directories.add(name)
        # Directory modes and times are set here, after all files are in place.
        if ffi.libarchive.archive_write_close(write_p) < -20:
            raise LayerError(f"cannot finish the layer: {lib.error(write_p)}")
    finally:
        ffi.entry_free(entry_p)
        ffi.read_free(read_p)
        ffi.write_free(write_p)
    return {"entries": writer.entries, "dropped_overlay_xattrs": dropped_xattrs}


def _child(fs_dir: str, mode: str, data_fd: int, result_fd: int) -> None:
    status = 1
    result: dict = {}
    try:
        os.dup2(data_fd, 0)
        os.dup2(result_fd, 1)
        os.closerange(3, 65536)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            os.chroot(fs_dir)
            os.chdir("/")
        except PermissionError:
            # NOTE: without CAP_SYS_CHROOT the checks above and libarchive's
            # SECURE_* flags are the only guard; minict pulls as root.
            os.chdir(fs_dir)
        os.umask(0)
        result = apply_tar_fd(0, mode)
        while os.read(0, 1 << 16):
            pass  # drain padding after the end-of-archive marker, so the parent gets no EPIPE
        result["ok"] = True
        status = 0
    except LayerError as error:
        result = {"ok": False, "error": str(error)}
    except OSError as error:
        result = {"ok": False, "error": f"layer extraction failed: {error}"}
    except BaseException as error:  # report anything else to the parent rather than die silently
        result = {"ok": False, "error": f"layer extraction failed: {error.__class__.__name__}: {error}"}
    finally:
        try:
            os.write(1, json.dumps(result).encode())
        finally:
            os._exit(status)


class Applier:
    """Parent-side handle of one applier child: write tar bytes, then finish."""

    def __init__(self, fs_dir: str, mode: str, what: str):
        if mode not in (OVERLAY, NATIVE):
            raise ValueError(f"unknown applier mode {mode!r}")
        self.what = what
        self.fs_dir = fs_dir
        _library()
        data_read, self._data_write = os.pipe2(os.O_CLOEXEC)
        result_read, result_write = os.pipe2(os.O_CLOEXEC)
        try:
            import fcntl

            fcntl.fcntl(self._data_write, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe only costs more context switches
        pid = os.fork()
        if pid == 0:
            _child(fs_dir, mode, data_read, result_write)
        os.close(data_read)
        os.close(result_write)
        self.pid = pid
        self._result_read = result_read
        self.broken = False

    def write(self, data: bytes | memoryview) -> None:
        """Send tar bytes; after the child exits early, drop the rest (finish() reports why)."""
        if self.broken or not data:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._data_write, view)
                view = view[written:]
        except BrokenPipeError:
            self.broken = True

    def finish(self) -> dict:
        """Close the stream, wait for the child, and raise LayerError if it failed."""
        self._close_data()
        chunks = []
        while chunk := os.read(self._result_read, 65536):
            chunks.append(chunk)
        os.close(self._result_read)
        _, status = os.waitpid(self.pid, 0)
        try:
            result = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            result = {}
        if result.get("ok") and os.waitstatus_to_exitcode(status) == 0:
            return result
        message = result.get("error") or f"the applier exited with status {os.waitstatus_to_exitcode(status)}"
        raise LayerError(f"{self.what}: {message}")

    def abort(self) -> None:
        """Stop the child and reap it. The caller removes the snapshot directory."""
        self._close_data()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        try:
            os.close(self._result_read)
        except OSError as error:
            if error.errno != errno.EBADF:
                raise

    def _close_data(self) -> None:
        if self._data_write >= 0:
            os.close(self._data_write)
            self._data_write = -1
