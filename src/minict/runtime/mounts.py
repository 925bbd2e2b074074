"""Mounts of the container: options to flags, spec mounts, /dev, masked and read-only paths.

Every target is resolved with secure_join inside the new root before it is
created or mounted on, so an image's symlink (to "/", to "/etc") cannot move
a mount onto the host.
"""

from __future__ import annotations

import errno
import os
import stat

from minict.linux import syscalls as sc
from minict.runtime.cgroups import read_cgroup_mounts
from minict.runtime.paths import secure_join

# Option words and the flags they set (first) or clear (second), as mount(8) names them.
_FLAG_OPTIONS = {
    "async": (0, sc.MS_SYNCHRONOUS), "atime": (0, sc.MS_NOATIME), "bind": (sc.MS_BIND, 0),
    "defaults": (0, 0), "dev": (0, sc.MS_NODEV), "diratime": (0, sc.MS_NODIRATIME),
    "dirsync": (sc.MS_DIRSYNC, 0), "exec": (0, sc.MS_NOEXEC), "lazytime": (sc.MS_LAZYTIME, 0),
    "loud": (0, sc.MS_SILENT), "mand": (sc.MS_MANDLOCK, 0), "noatime": (sc.MS_NOATIME, 0),
    "nodev": (sc.MS_NODEV, 0), "nodiratime": (sc.MS_NODIRATIME, 0), "noexec": (sc.MS_NOEXEC, 0),
    "nolazytime": (0, sc.MS_LAZYTIME), "nomand": (0, sc.MS_MANDLOCK), "norelatime": (0, sc.MS_RELATIME),
    "nostrictatime": (0, sc.MS_STRICTATIME), "nosuid": (sc.MS_NOSUID, 0), "nosymfollow": (sc.MS_NOSYMFOLLOW, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0), "relatime": (sc.MS_RELATIME, 0), "remount": (sc.MS_REMOUNT, 0),
    "ro": (sc.MS_RDONLY, 0), "rw": (0, sc.MS_RDONLY), "silent": (sc.MS_SILENT, 0),
    "strictatime": (sc.MS_STRICTATIME, 0), "suid": (0, sc.MS_NOSUID), "sync": (sc.MS_SYNCHRONOUS, 0),
}
_PROPAGATION_OPTIONS = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Flags a bind mount only takes through a second, remounting mount(2) call.
_REMOUNT_FLAGS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME
                  | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)


# Marks a bind mount of a named or anonymous volume: fill it from the image when it is empty.
COPY_UP_OPTION = "x-minict.copyup"


class MountOptions:
    """Mount options split into flags, propagation changes, filesystem data and tmpcopyup."""

    def __init__(self, flags: int, propagation: list[int], data: str, copy_up: bool = False):
        self.flags = flags
        self.propagation = propagation
        self.data = data
        self.copy_up = copy_up


def parse_options(options: list[str]) -> MountOptions:
    """Split mount options into flags, propagation changes and filesystem data."""
    flags = 0
    propagation = []
    data = []
    copy_up = False
    for option in options:
        if option in _FLAG_OPTIONS:
            set_flags, clear_flags = _FLAG_OPTIONS[option]
            flags = (flags | set_flags) & ~clear_flags
        elif option in _PROPAGATION_OPTIONS:
            propagation.append(_PROPAGATION_OPTIONS[option])
        elif option in ("tmpcopyup", "notmpcopyup"):
            copy_up = option == "tmpcopyup"
        elif option.startswith("x-") or option in ("rro", "rrw", "idmap", "ridmap"):
            continue  # userspace hints and recursive or idmapped options minict does not implement
        else:
            data.append(option)
    return MountOptions(flags, propagation, ",".join(data), copy_up)


def describe_flags(flags: int) -> str:
    names = [(sc.MS_RDONLY, "MS_RDONLY"), (sc.MS_NOSUID, "MS_NOSUID"), (sc.MS_NODEV, "MS_NODEV"),
             (sc.MS_NOEXEC, "MS_NOEXEC"), (sc.MS_REMOUNT, "MS_REMOUNT"), (sc.MS_BIND, "MS_BIND"),
             (sc.MS_MOVE, "MS_MOVE"), (sc.MS_REC, "MS_REC"), (sc.MS_PRIVATE, "MS_PRIVATE"),
             (sc.MS_SLAVE, "MS_SLAVE"), (sc.MS_SHARED, "MS_SHARED"), (sc.MS_UNBINDABLE, "MS_UNBINDABLE"),
             (sc.MS_NOATIME, "MS_NOATIME"), (sc.MS_RELATIME, "MS_RELATIME"), (sc.MS_STRICTATIME, "MS_STRICTATIME")]
    text = "|".join(name for bit, name in names if flags & bit)
    return text or "0"


def _create_mountpoint(target: str, source_is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    if source_is_dir:
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))


def mount_entry(rootfs: str, bundle: str, entry: dict, trace) -> None:
    """Mount one entry of config.json's `mounts` below `rootfs` (before pivot_root)."""
    destination = entry.get("destination")
    if not isinstance(destination, str) or not destination:
        raise ValueError(f"mount {entry!r} has no destination")
    options = parse_options(list(entry.get("options") or []))
    fill_from_image = COPY_UP_OPTION in (entry.get("options") or [])
    fstype = entry.get("type") or None
    source = entry.get("source") or fstype or "none"
    bind = bool(options.flags & sc.MS_BIND) or fstype == "bind"
    target = secure_join(rootfs, destination)

    if bind:
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        try:
            source_is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"bind mount source {source} for {destination} does not exist") from None
        if fill_from_image and source_is_dir:
            _fill_volume(target, source, destination, trace)
        _create_mountpoint(target, source_is_dir)
        flags = sc.MS_BIND | (options.flags & sc.MS_REC)
        trace(f"mount({source!r}, {target!r}, NULL, {describe_flags(flags)})", f"bind {destination} into the container")
        sc.mount(source, target, None, flags)
        remount = options.flags & _REMOUNT_FLAGS
        if remount:
            flags = sc.MS_BIND | sc.MS_REMOUNT | remount
            trace(f"mount(NULL, {target!r}, NULL, {describe_flags(flags)})",
                  "a bind mount takes ro, nosuid, nodev and noexec only when remounted")
            sc.mount(None, target, None, flags)
    elif fstype in ("cgroup", "cgroup2"):
        _create_mountpoint(target, True)
        try:
            mount_cgroups(target, options.flags & ~sc.MS_BIND, destination, trace)
        except PermissionError:
            # A user namespace without its own cgroup namespace may not mount the trees: bind the host's.
            trace(f"mount('/sys/fs/cgroup', {target!r}, NULL, MS_BIND|MS_REC)", "new cgroup mounts are not permitted here")
            if os.path.ismount(target):
                sc.umount2(target, sc.MNT_DETACH)  # the tmpfs of a v1 layout, mounted before the refusal
            sc.mount("/sys/fs/cgroup", target, None, sc.MS_BIND | sc.MS_REC)
    elif options.copy_up and _has_entries(target):
        _mount_with_copy_up(source, target, fstype, options, destination, trace)
    else:
        _create_mountpoint(target, True)
        flags = options.flags & ~sc.MS_BIND
        trace(f"mount({source!r}, {target!r}, {fstype!r}, {describe_flags(flags)}, {options.data!r})",
              f"{fstype} at {destination}")
        try:
            sc.mount(source, target, fstype, flags, options.data or None)
        except PermissionError:
            if fstype not in ("sysfs", "mqueue"):
                raise
            # Without the rights to mount a new instance (a foreign network or
            # user namespace), bind the host's instance read-only instead.
            host = "/sys" if fstype == "sysfs" else "/dev/mqueue"
            trace(f"mount({host!r}, {target!r}, NULL, MS_BIND|MS_REC)", f"new {fstype} not permitted; bind the host's")
            sc.mount(host, target, None, sc.MS_BIND | sc.MS_REC)
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | (flags & _REMOUNT_FLAGS))
    for propagation in options.propagation:
        trace(f"mount(NULL, {target!r}, NULL, {describe_flags(propagation)})", "propagation of this mount")
        sc.mount(None, target, None, propagation)


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """List the host's cgroup mounts below /sys/fs/cgroup as (mount point, fstype, controllers)."""
    found = []
    for mount_point, fstype, options in read_cgroup_mounts():
        if mount_point != "/sys/fs/cgroup" and not mount_point.startswith("/sys/fs/cgroup/"):
            continue
        kept = [o for o in options if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]
        found.append((mount_point, fstype, ",".join(kept)))
    return found


def mount_cgroups(target: str, flags: int, destination: str, trace) -> None:
    """Mount the container's view of the cgroup trees at `target` (a "cgroup" entry of the spec).

    This runs after the cgroup namespace is made, so each tree shows the
    container's own cgroup as its root. On a v2 host that is one cgroup2
    mount. On a v1 (or hybrid) host it is a tmpfs holding one mount per
    v1 hierarchy, named as on the host.

    A hybrid host's cgroup2 tree (/sys/fs/cgroup/unified) is left out, as
    runc does. minict puts the container in no cgroup of that tree, so it would
    show the host's whole tree, and mounting it took 11 ms here, a quarter of a
    container start.
    """
    hierarchies = _cgroup_hierarchies()
    unified = [h for h in hierarchies if h[0] == "/sys/fs/cgroup" and h[1] == "cgroup2"]
    if unified:
        trace(f"mount('cgroup2', {target!r}, 'cgroup2', {describe_flags(flags)})", f"the cgroup tree at {destination}")
        sc.mount("cgroup2", target, "cgroup2", flags)
        return
    trace(f"mount('tmpfs', {target!r}, 'tmpfs', ...) and one cgroup mount per hierarchy",
          f"the v1 cgroup trees at {destination}, each rooted at the container's cgroup")
    sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    for mount_point, fstype, controllers in hierarchies:
        if fstype == "cgroup2":
            continue
        name = os.path.basename(mount_point)
        subdirectory = os.path.join(target, name)
        os.makedirs(subdirectory, 0o755, exist_ok=True)
        sc.mount(fstype, subdirectory, fstype, flags, controllers or None)
        if "," in name:
            for part in name.split(","):
                link = os.path.join(target, part)
                if not os.path.lexists(link):
                    os.symlink(name, link)
    if flags & sc.MS_RDONLY:
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
                 | sc.MS_NOEXEC)


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _copy_contents(source: str, target: str, trace, why: str) -> None:
    """cp -a the contents of `source` into `target` and give `target` the owner and mode of `source`."""
    from minict.fsutil import copy_tree

    trace(f"cp -a {source}/. {target}/", why)
    copy_tree(source, target)
    info = os.stat(source)
    os.chown(target, info.st_uid, info.st_gid)
    os.chmod(target, stat.S_IMODE(info.st_mode))


def _fill_volume(target: str, volume: str, destination: str, trace) -> None:
    """Docker's rule for volumes: an empty volume takes a copy of what the image has at the mount point."""
    if not os.path.isdir(target) or os.path.islink(target) or _has_entries(volume) or not _has_entries(target):
        return
    _copy_contents(target, volume, trace, f"the volume for {destination} is empty: fill it from the image")


def _mount_with_copy_up(source: str, target: str, fstype: str | None, options: MountOptions, destination: str,
                        trace) -> None:
    """tmpcopyup: mount the tmpfs aside, copy the image's files into it, then move it onto the target."""
    import tempfile

    staging = tempfile.mkdtemp(prefix="minict-copyup-")
    try:
        flags = options.flags & ~sc.MS_BIND
        sc.mount(source, staging, fstype, flags & ~sc.MS_RDONLY, options.data or None)
        _copy_contents(target, staging, trace, f"tmpcopyup: the tmpfs at {destination} starts with the image's files")
        if flags & sc.MS_RDONLY:
            sc.mount(None, staging, None, sc.MS_REMOUNT | flags, options.data or None)
        trace(f"mount({staging!r}, {target!r}, NULL, MS_MOVE)", "put the filled tmpfs in place")
        sc.mount(staging, target, None, sc.MS_MOVE)
    finally:
        os.rmdir(staging)


# Device nodes every container gets, as the OCI runtime spec lists them.
DEFAULT_DEVICES = [
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
]
DEFAULT_LINKS = [
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
]


def populate_dev(rootfs: str, devices: list[dict], trace, defaults: bool = True) -> None:
    """Create the spec's device nodes and, with `defaults`, the standard ones and the /dev links.

    Inside a user namespace mknod is not permitted, so each node is then a
    bind mount of the host's node of the same path, as runc does.
    """
    dev = secure_join(rootfs, "/dev")
    old_umask = os.umask(0)
    try:
        wanted = [{"path": f"/dev/{name}", "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
                  for name, major, minor in DEFAULT_DEVICES] if defaults else []
        wanted += devices
        for device in wanted:
            target = secure_join(rootfs, device["path"])
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[device.get("type", "c")]
            mode = device.get("fileMode", 0o666) & 0o7777
            if os.path.lexists(target):
                os.unlink(target)
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            rdev = os.makedev(device.get("major", 0), device.get("minor", 0))
            trace(f"mknod({target!r}, {oct(kind | mode)}, makedev({device.get('major', 0)}, {device.get('minor', 0)}))",
                  f"device {device['path']}")
            try:
                os.mknod(target, kind | mode, rdev)
            except PermissionError:
                host_node = _host_device(device["path"], kind, rdev)
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
                trace(f"mount({host_node!r}, {target!r}, NULL, MS_BIND)", "mknod is not permitted here")
                sc.mount(host_node, target, None, sc.MS_BIND)
                continue
            os.chown(target, device.get("uid", 0), device.get("gid", 0))
        if not defaults:
            return
        for name, link in DEFAULT_LINKS:
            path = os.path.join(dev, name)
            if not os.path.lexists(path):
                os.symlink(link, path)
        trace(f"symlink(...) x{len(DEFAULT_LINKS)}", "/dev/fd, stdin, stdout, stderr, ptmx -> pts/ptmx, core")
    finally:
        os.umask(old_umask)


def _host_device(path: str, kind: int, rdev: int) -> str:
    """Find the host's node for a device: at the same path, else any node in /dev with the same numbers."""
    candidates = [path] + [os.path.join("/dev", name) for name in sorted(os.listdir("/dev"))]
    for candidate in candidates:
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_IFMT(info.st_mode) == kind and info.st_rdev == rdev:
            return candidate
    raise OSError(errno.EPERM, f"device {path} ({os.major(rdev)}:{os.minor(rdev)}) cannot be created in a user "
                  "namespace, and the host has no such node to bind")


def mask_path(path: str, trace) -> None:
    """Hide a path after pivot_root: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(info.st_mode):
        trace(f"mount('tmpfs', {path!r}, 'tmpfs', MS_RDONLY)", "masked path: hide the directory")
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
    else:
        trace(f"mount('/dev/null', {path!r}, NULL, MS_BIND)", "masked path: reads return nothing")
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def readonly_path(path: str, trace) -> None:
    """Make a path read-only after pivot_root by binding it on itself and remounting."""
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except FileNotFoundError:
        return
    trace(f"mount({path!r}, {path!r}, NULL, MS_BIND|MS_REMOUNT|MS_RDONLY)", "read-only path")
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
