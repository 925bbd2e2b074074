"""Generate an OCI runtime config.json for a container from its image config and the run flags.

The defaults match what docker gives a container: the same mounts, masked
and read-only paths, and capability set, new PID, mount, UTS, IPC and cgroup
namespaces, and the host's network unless --network none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from minict.errors import InvalidArgument
from minict.linux.capabilities import DEFAULT as DEFAULT_CAPABILITIES
from minict.runtime.init import OVERLAY_ANNOTATION, USER_ANNOTATION

OCI_VERSION = "1.0.2"
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


@dataclass
class RunOptions:
    """What `minict run` was asked for, beyond the image."""

    command: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    hostname: str | None = None
    user: str | None = None
    workdir: str | None = None
    network: str = "host"
    terminal: bool = False


def validate(options: RunOptions) -> None:
    """Raise InvalidArgument for a malformed -e, -w or --network before anything is pulled or created."""
    for entry in options.env:
        if "=" not in entry or entry.startswith("="):
            raise InvalidArgument(f"invalid environment entry {entry!r}: use KEY=VALUE")
    if options.workdir is not None and not options.workdir.startswith("/"):
        raise InvalidArgument(f"invalid working directory {options.workdir!r}: it must be an absolute path")
    if options.network not in ("host", "none"):
        raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")


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
             overlay: dict | None) -> dict:
    """Return config.json for a container. `files` maps /etc/hostname and friends to host files."""
    config = image_config.get("config") or {}
    args = process_args(config, options)
    image_env = [e for e in (config.get("Env") or []) if isinstance(e, str) and "=" in e]
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
    for destination, source in files.items():
        mounts.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rprivate"]})

    annotations = {}
    if overlay is not None:
        annotations[OVERLAY_ANNOTATION] = json.dumps(overlay)
    if user:
        annotations[USER_ANNOTATION] = user

    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": options.terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": list(DEFAULT_CAPABILITIES),
                "effective": list(DEFAULT_CAPABILITIES),
                "permitted": list(DEFAULT_CAPABILITIES),
            },
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": annotations,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "rootfsPropagation": "rprivate",
        },
    }
