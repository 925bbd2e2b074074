"""Parse docker-style run flags into checked values: sizes, CPUs, ulimits, capabilities and mounts.

Each parser raises InvalidArgument naming the flag, the value and the form
it expects, so `minict run` can reject a bad flag before it pulls anything.
"""

from __future__ import annotations

import os
import re

from minict.errors import InvalidArgument

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 << 20  # docker's floor: below it a container cannot even start
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
RLIM_INFINITY = (1 << 64) - 1
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack", "as")


def parse_size(text: str, flag: str) -> int:
    """Parse 512, 64k, 64m, 1g, 1.5g or 64MiB into bytes."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid {flag} {text!r}: use a size such as 512m or 2g (units b, k, m, g)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_memory(text: str) -> int:
    value = parse_size(text, "--memory")
    if value < MIN_MEMORY:
        raise InvalidArgument(f"invalid --memory {text!r}: the minimum is 6m")
    return value


def parse_memory_swap(text: str, memory: int | None) -> int:
    """--memory-swap is memory plus swap; -1 means unlimited swap."""
    if text.strip() == "-1":
        return -1
    value = parse_size(text, "--memory-swap")
    if memory is None:
        raise InvalidArgument("--memory-swap needs --memory as well")
    if value < memory:
        raise InvalidArgument(f"invalid --memory-swap {text!r}: it is memory plus swap, so it must be at least "
                              f"--memory ({memory} bytes), or -1 for unlimited swap")
    return value


def online_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"invalid --cpus {text!r}: use a number such as 1.5") from None
    count = len(online_cpus())
    if not 0.01 <= value <= count:
        raise InvalidArgument(f"invalid --cpus {text!r}: this machine has {count} CPUs, so use 0.01 to {count}")
    return value


def parse_cpuset(text: str) -> str:
    """Check a list such as 0-1,3 against the CPUs this machine has."""
    cpus: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not match:
            raise InvalidArgument(f"invalid --cpuset-cpus {text!r}: use a list such as 0-1,3")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise InvalidArgument(f"invalid --cpuset-cpus {text!r}: the range {part} runs backwards")
        cpus.update(range(first, last + 1))
    missing = sorted(cpus - online_cpus())
    if missing:
        available = ",".join(str(c) for c in sorted(online_cpus()))
        raise InvalidArgument(f"invalid --cpuset-cpus {text!r}: CPU {missing[0]} is not available; "
                              f"this machine has {available}")
    return text


def parse_int(text: str, flag: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid {flag} {text!r}: use a whole number") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            expected = f"a number of at least {minimum}"
        elif minimum is None:
            expected = f"a number of at most {maximum}"
        else:
            expected = f"a number from {minimum} to {maximum}"
        raise InvalidArgument(f"invalid {flag} {text!r}: use {expected}")
    return value


def parse_ulimit(text: str) -> dict:
    """Parse NAME=SOFT[:HARD] into an OCI rlimit; -1 means unlimited."""
    name, sep, values = text.partition("=")
    if not sep or name not in ULIMIT_NAMES:
        raise InvalidArgument(f"invalid --ulimit {text!r}: use NAME=SOFT[:HARD] with NAME one of "
                              + ", ".join(ULIMIT_NAMES))
    parts = values.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"invalid --ulimit {text!r}: use NAME=SOFT[:HARD]")
    numbers = []
    for part in parts:
        try:
            number = int(part)
        except ValueError:
            raise InvalidArgument(f"invalid --ulimit {text!r}: {part!r} is not a number") from None
        if number < -1:
            raise InvalidArgument(f"invalid --ulimit {text!r}: use -1 for unlimited, not {number}")
        numbers.append(RLIM_INFINITY if number == -1 else number)
    soft, hard = numbers[0], numbers[-1]
    if soft > hard:
        raise InvalidArgument(f"invalid --ulimit {text!r}: the soft limit {parts[0]} is above the hard limit {parts[-1]}")
    return {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}


def capability_name(text: str) -> str:
    from minict.linux.capabilities import NAMES

    name = text.strip().upper()
    if name == "ALL":
        return name
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in NAMES:
        raise InvalidArgument(f"unknown capability {text!r}: use a name such as NET_ADMIN or CAP_SYS_TIME, or ALL")
    return name


def capability_set(default: list[str], add: list[str], drop: list[str]) -> list[str]:
    """Apply --cap-drop, then --cap-add, to `default`, as docker does."""
    from minict.linux.capabilities import available

    add_names = [capability_name(c) for c in add]
    drop_names = [capability_name(c) for c in drop]
    result = [] if "ALL" in drop_names else [c for c in default if c not in drop_names]
    if "ALL" in add_names:
        return available()
    for name in add_names:
        if name not in result:
            result.append(name)
    return result


class MountRequest:
    """One -v, --mount or --tmpfs flag. `source` is a host path (bind), a volume name or "" (anonymous).

    `copy` fills an empty volume from the image (docker's default; nocopy turns it off).
    """

    def __init__(self, kind: str, destination: str, source: str = "", readonly: bool = False,
                 options: list[str] | None = None, copy: bool = True):
        self.kind = kind
        self.destination = destination
        self.source = source
        self.readonly = readonly
        self.options = options if options is not None else []
        self.copy = copy

    def __repr__(self) -> str:
        return (f"MountRequest({self.kind!r}, {self.destination!r}, {self.source!r}, readonly={self.readonly}, "
                f"options={self.options!r}, copy={self.copy})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MountRequest) and vars(self) == vars(other)


def _check_destination(destination: str, flag: str, text: str) -> str:
    if not destination.startswith("/"):
        raise InvalidArgument(f"invalid {flag} {text!r}: the container path {destination!r} must be absolute")
    normal = os.path.normpath(destination)
    if normal == "/":
        raise InvalidArgument(f"invalid {flag} {text!r}: the container path cannot be '/'")
    return normal


def _check_volume_name(name: str, flag: str, text: str) -> None:
    if not VOLUME_NAME_RE.match(name) or not name.isascii() or len(name) > 128:
        raise InvalidArgument(
            f"invalid {flag} {text!r}: {name!r} is not a valid volume name (letters, digits, '_', '.', '-', at "
            "least 2 characters); to bind a host directory, give its absolute path")


_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def parse_volume(text: str) -> MountRequest:
    """-v SRC:DST[:OPTIONS] (bind or named volume) or -v DST (anonymous volume)."""
    parts = text.split(":")
    if len(parts) == 1:
        return MountRequest("volume", _check_destination(parts[0], "-v", text))
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid -v {text!r}: use SRC:DST[:ro|rw] with SRC a host path or a volume name")
    source, destination = parts[0], _check_destination(parts[1], "-v", text)
    request = MountRequest("bind" if source.startswith("/") else "volume", destination, source)
    if request.kind == "volume":
        _check_volume_name(source, "-v", text)
    else:
        request.source = os.path.normpath(source)
    for option in (parts[2].split(",") if len(parts) == 3 else []):
        if option == "ro":
            request.readonly = True
        elif option == "rw":
            request.readonly = False
        elif option == "nocopy" and request.kind == "volume":
            request.copy = False
        elif option in _PROPAGATIONS and request.kind == "bind":
            request.options.append(option)
        elif option in ("z", "Z"):
            continue  # SELinux relabelling: nothing to do without SELinux
        else:
            raise InvalidArgument(f"invalid -v {text!r}: unknown option {option!r}; use ro, rw, nocopy, "
                                  "or a propagation such as rslave")
    return request


def parse_tmpfs(text: str) -> MountRequest:
    """--tmpfs DST[:OPTIONS], options as mount(8) takes them (size=64m,mode=1777,...)."""
    destination, _, options = text.partition(":")
    request = MountRequest("tmpfs", _check_destination(destination, "--tmpfs", text))
    request.options = ["nosuid", "nodev", "noexec"]
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            request.options.append(f"size={parse_size(value, '--tmpfs size')}")
        elif key == "mode":
            if not re.fullmatch(r"[0-7]{3,4}", value):
                raise InvalidArgument(f"invalid --tmpfs {text!r}: mode {value!r} must be octal, such as 1777")
            request.options.append(option)
        elif key in ("uid", "gid", "nr_inodes", "nr_blocks"):
            parse_int(value, f"--tmpfs {key}", 0)
            request.options.append(option)
        elif key in ("exec", "noexec", "suid", "nosuid", "dev", "nodev", "ro", "rw", "atime", "noatime",
                     "relatime", "strictatime", "sync", "async", "tmpcopyup", "notmpcopyup"):
            request.options.append(key)
        else:
            raise InvalidArgument(f"invalid --tmpfs {text!r}: unknown option {option!r}")
    return request


def parse_mount(text: str) -> MountRequest:
    """--mount type=bind|volume|tmpfs,source=...,target=...,readonly,... (docker's keys)."""
    values: dict[str, str] = {}
    flags: list[str] = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise InvalidArgument(f"invalid --mount {text!r}: empty field")
        if sep:
            values[key] = value
        else:
            flags.append(key)
    kind = values.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid --mount {text!r}: type {kind!r} is not bind, volume or tmpfs")
    target = values.pop("target", None) or values.pop("destination", None) or values.pop("dst", None)
    if not target:
        raise InvalidArgument(f"invalid --mount {text!r}: target= is required")
    source = values.pop("source", None) or values.pop("src", None) or ""
    request = MountRequest(kind, _check_destination(target, "--mount", text), source)
    for flag in flags:
        if flag in ("readonly", "ro"):
            request.readonly = True
        elif flag == "volume-nocopy" and kind == "volume":
            request.copy = False
        else:
            raise InvalidArgument(f"invalid --mount {text!r}: unknown field {flag!r}")
    readonly = values.pop("readonly", values.pop("ro", None))
    if readonly is not None:
        if readonly not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid --mount {text!r}: readonly={readonly!r} must be true or false")
        request.readonly = readonly in ("true", "1")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid --mount {text!r}: a bind source must be an absolute host path")
        if not os.path.exists(source):
            raise InvalidArgument(f"invalid --mount {text!r}: the bind source {source} does not exist "
                                  "(--mount does not create it; -v does)")
        request.source = os.path.normpath(source)
        propagation = values.pop("bind-propagation", None)
        if propagation is not None:
            if propagation not in _PROPAGATIONS:
                raise InvalidArgument(f"invalid --mount {text!r}: bind-propagation must be one of "
                                      + ", ".join(_PROPAGATIONS))
            request.options.append(propagation)
    elif kind == "volume":
        if source:
            _check_volume_name(source, "--mount", text)
        nocopy = values.pop("volume-nocopy", None)
        if nocopy is not None:
            request.copy = nocopy not in ("true", "1")
    else:
        if source:
            raise InvalidArgument(f"invalid --mount {text!r}: a tmpfs mount takes no source")
        request.options = ["nosuid", "nodev", "noexec"]
        size = values.pop("tmpfs-size", None)
        if size is not None:
            request.options.append(f"size={parse_size(size, '--mount tmpfs-size')}")
        mode = values.pop("tmpfs-mode", None)
        if mode is not None:
            if not re.fullmatch(r"[0-7]{3,4}", mode):
                raise InvalidArgument(f"invalid --mount {text!r}: tmpfs-mode {mode!r} must be octal, such as 1777")
            request.options.append(f"mode={mode}")
    if values:
        raise InvalidArgument(f"invalid --mount {text!r}: unknown field {sorted(values)[0]!r}")
    return request


def parse_env_file(path: str) -> list[str]:
    """Read KEY=VALUE lines; KEY alone takes minict's value; '#' lines and blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise InvalidArgument(f"failed to read --env-file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"invalid --env-file {path}: it is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, _ = stripped.partition("=")
        if not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"invalid --env-file {path} line {number}: {line!r} is not KEY=VALUE")
        if sep:
            entries.append(stripped)
        elif key in os.environ:
            entries.append(f"{key}={os.environ[key]}")
    return entries


def parse_security_opt(text: str) -> bool:
    """Return True for no-new-privileges. Accept, with no effect, the options for profiles minict does not apply."""
    if text in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        return True
    if text in ("no-new-privileges:false", "no-new-privileges=false"):
        return False
    if text in ("seccomp=unconfined", "seccomp:unconfined", "apparmor=unconfined", "apparmor:unconfined",
                "label=disable", "label:disable"):
        return False  # minict applies no seccomp, AppArmor or SELinux profile yet; see docs/security.md
    raise InvalidArgument(f"unsupported --security-opt {text!r}: minict supports no-new-privileges, "
                          "and seccomp=unconfined, apparmor=unconfined, label=disable (which change nothing here)")
