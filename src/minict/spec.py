"""Generate an OCI runtime config.json for a container from its image config and the run flags.

The defaults match what docker gives a container: the same mounts, masked
and read-only paths, and capability set, new PID, mount, UTS, IPC and cgroup
namespaces, and the host's network unless --network none.
"""

from __future__ import annotations

import json

from minict.errors import InvalidArgument
from minict.linux.capabilities import DEFAULT as DEFAULT_CAPABILITIES
from minict.oci import OCI_VERSION, signal_number  # noqa: F401 (part of this module's interface)
from minict.runtime.init import INIT_ANNOTATION, OVERLAY_ANNOTATION, USER_ANNOTATION

STOP_SIGNAL_ANNOTATION = "org.minict.stop-signal"
STOP_TIMEOUT_ANNOTATION = "org.minict.stop-timeout"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]


class RunOptions:
    """What `minict run` was asked for, beyond the image.

    A plain class rather than a dataclass: dataclasses imports inspect and
    ast, about 5 ms of each container start. `mounts` is a list of
    runflags.MountRequest in flag order, and `resources` is OCI's linux.resources.
    """

    def __init__(self, *, command: list[str] | None = None, entrypoint: list[str] | None = None,
                 env: list[str] | None = None, hostname: str | None = None, user: str | None = None,
                 workdir: str | None = None, network: str = "host", terminal: bool = False,
                 interactive: bool = False, read_only: bool = False, init: bool = False, privileged: bool = False,
                 no_new_privileges: bool = False, cap_add: list[str] | None = None, cap_drop: list[str] | None = None,
                 ulimits: list[dict] | None = None, mounts: list | None = None, resources: dict | None = None,
                 stop_signal: str | None = None, stop_timeout: int | None = None, log_options: dict | None = None):
        self.command = command or []
        self.entrypoint = entrypoint
        self.env = env or []
        self.hostname = hostname
        self.user = user
        self.workdir = workdir
        self.network = network
        self.terminal = terminal
        self.interactive = interactive
        self.read_only = read_only
        self.init = init
        self.privileged = privileged
        self.no_new_privileges = no_new_privileges
        self.cap_add = cap_add or []
        self.cap_drop = cap_drop or []
        self.ulimits = ulimits or []
        self.mounts = mounts or []
        self.resources = resources or {}
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.log_options = log_options or {}


def validate(options: RunOptions) -> None:
    """Raise InvalidArgument for a malformed -e, -w or --network before anything is pulled or created."""
    for entry in options.env:
        if "=" not in entry or entry.startswith("="):
            raise InvalidArgument(f"invalid environment entry {entry!r}: use KEY=VALUE")
    if options.workdir is not None and not options.workdir.startswith("/"):
        raise InvalidArgument(f"invalid working directory {options.workdir!r}: it must be an absolute path")
    if options.network not in ("host", "none"):
        raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")
    seen = set()
    for request in options.mounts:
        if request.destination in seen:
            raise InvalidArgument(f"duplicate mount point {request.destination}: give each container path once")
        seen.add(request.destination)
    if options.stop_signal is not None:
        signal_number(options.stop_signal, "--stop-signal")
    from minict.runflags import capability_set

    capability_set([], options.cap_add, options.cap_drop)


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def merge_env(*layers: list[str]) -> list[str]:
    """Merge KEY=VALUE lists; a later KEY replaces an earlier one in place."""
    merged: dict[str, str] = {}
    for layer in layers:
        for entry in layer:
            merged[_env_key(entry)] = entry
    return list(merged.values())


def process_args(image_config: dict, options: RunOptions) -> list[str]:
    """Docker's rule: Entrypoint + Cmd, where a given command replaces Cmd and --entrypoint resets both."""
    entrypoint = image_config.get("Entrypoint") or []
    cmd = image_config.get("Cmd") or []
    if options.entrypoint is not None:
        entrypoint = options.entrypoint
        cmd = []
    if options.command:
        cmd = options.command
    return list(entrypoint) + list(cmd)


def generate(image_config: dict, options: RunOptions, hostname: str, files: dict[str, str],
             overlay: dict | None, user_mounts: list[dict] | None = None, cgroups_path: str | None = None) -> dict:
    """Return config.json for a container.

    `files` maps /etc/hostname and friends to host files. `user_mounts` are
    the OCI mounts of -v, --mount and --tmpfs, with volume names already
    turned into host paths.
    """
    from minict.linux.capabilities import available
    from minict.runflags import capability_set

    config = image_config.get("config") or {}
    args = process_args(config, options)
    # An entry without a name before "=" names no variable, so it is dropped.
    image_env = [e for e in (config.get("Env") or []) if isinstance(e, str) and "=" in e and not e.startswith("=")]
    defaults = [] if any(_env_key(e) == "PATH" for e in image_env) else [f"PATH={DEFAULT_PATH}"]
    extra = [f"HOSTNAME={hostname}"]
    if options.terminal:
        extra.append("TERM=xterm")
    for entry in options.env:
        if "=" not in entry or entry.startswith("="):
            raise InvalidArgument(f"invalid environment entry {entry!r}: use KEY=VALUE")
    env = merge_env(defaults, image_env, extra, options.env)

    user = options.user if options.user is not None else (config.get("User") or "")
    cwd = options.workdir or config.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"invalid working directory {cwd!r}: it must be an absolute path")

    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]
    if options.network == "none":
        namespaces.append({"type": "network"})
    elif options.network != "host":
        raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")

    mounts = default_mounts()
    if options.privileged:
        mounts[-1]["options"] = ["nosuid", "noexec", "nodev", "rw"]
    for destination, source in files.items():
        mounts.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rprivate"]})
    # Parents before children, so a mount on /data/cache lands inside the one on /data.
    mounts += sorted(user_mounts or [], key=lambda m: m["destination"].count("/"))

    annotations = {}
    if overlay is not None:
        annotations[OVERLAY_ANNOTATION] = json.dumps(overlay)
    if user:
        annotations[USER_ANNOTATION] = user
    if options.init:
        annotations[INIT_ANNOTATION] = "true"
    stop_signal = options.stop_signal or config.get("StopSignal")
    if stop_signal:
        annotations[STOP_SIGNAL_ANNOTATION] = str(stop_signal)
    if options.stop_timeout is not None:
        annotations[STOP_TIMEOUT_ANNOTATION] = str(options.stop_timeout)

    default_caps = available() if options.privileged else list(DEFAULT_CAPABILITIES)
    capabilities = capability_set(default_caps, options.cap_add, options.cap_drop)
    process = {
        "terminal": options.terminal,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": capabilities, "effective": capabilities, "permitted": capabilities},
        "noNewPrivileges": options.no_new_privileges,
    }
    if options.ulimits:
        process["rlimits"] = list(options.ulimits)
    linux: dict = {
        "namespaces": namespaces,
        "maskedPaths": [] if options.privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if options.privileged else list(READONLY_PATHS),
        "rootfsPropagation": "rprivate",
    }
    if options.privileged:
        linux["devices"] = host_devices()
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
        linux["resources"] = dict(options.resources)
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": options.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    }


def host_devices() -> list[dict]:
    """The host's device nodes, for --privileged (docker gives such a container all of them)."""
    import os
    import stat

    devices = []
    for directory, subdirectories, files in os.walk("/dev"):
        subdirectories[:] = [d for d in subdirectories if d not in ("pts", "shm", "mqueue", "fd")]
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                if path in ("/dev/console", "/dev/ptmx", "/dev/tty"):
                    continue  # the container gets its own
                devices.append({"path": path, "type": "c" if stat.S_ISCHR(info.st_mode) else "b",
                                "major": os.major(info.st_rdev), "minor": os.minor(info.st_rdev),
                                "fileMode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid})
    return devices
