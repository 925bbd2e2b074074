"""Control groups: create a container's cgroup, apply its limits, freeze it, read OOM kills.

Linux has two cgroup layouts and minict works on both:

- v2 (unified): one tree, usually at /sys/fs/cgroup, where a cgroup is one
  directory holding every controller's files (memory.max, pids.max, ...).
  A controller works in a child only if the parent lists it in
  cgroup.subtree_control.
- v1: one tree per controller (/sys/fs/cgroup/memory, /sys/fs/cgroup/pids,
  ...), so a container has one directory in each tree.

The layout is detected from /proc/self/mountinfo at run time. Both classes
take their mount points as arguments, so tests can point them at a fake tree
in a temporary directory.

Limits come from the OCI `linux.resources` object, so `minict run` and a
config.json written by another engine go through the same code.
"""

from __future__ import annotations

import errno
import os
import time

CGROUP_ROOT = "/sys/fs/cgroup"
# v1 controllers minict creates a directory in. A new devices cgroup copies its
# parent's rules, so the container gets the host's device rules unless the spec sets some.
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices")
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io")


class CgroupError(Exception):
    pass


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as file:
            file.write(value)
    except OSError as error:
        raise CgroupError(f"failed to write {value!r} to {path}: {error.strerror}") from None


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


# OCI blockIO throttle keys and the v1 file suffix each is written to; v2 writes io.max fields instead.
THROTTLES = {"throttleReadBpsDevice": "read_bps_device", "throttleWriteBpsDevice": "write_bps_device",
             "throttleReadIOPSDevice": "read_iops_device", "throttleWriteIOPSDevice": "write_iops_device"}
V2_THROTTLE_FIELDS = {"read_bps_device": "rbps", "write_bps_device": "wbps", "read_iops_device": "riops",
                      "write_iops_device": "wiops"}


def _write_first(directory: str, names: tuple[str, ...], value: str) -> None:
    """Write `value` to the first of `names` that exists (the file name depends on the I/O scheduler)."""
    for name in names:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            _write(path, value)
            return
    raise CgroupError(f"none of {', '.join(names)} exists in {directory}: the block I/O scheduler has no weights")


def _read_or_empty(path: str) -> str:
    try:
        return _read(path)
    except FileNotFoundError:
        return ""


def _flat_keyed(path: str) -> dict[str, int]:
    """Parse a file of "key value" lines, such as memory.events or memory.oom_control."""
    values = {}
    try:
        text = _read(path)
    except OSError:
        return values
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def cpu_weight(shares: int) -> int:
    """Map v1 cpu.shares (2..262144) onto v2 cpu.weight (1..10000), linearly, as runc and crun do."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


# Devices every container may use even when its rules deny all: the nodes
# minict creates in /dev and the pty pair. runc allows the same set.
DEFAULT_DEVICE_RULES = [(True, "c 1:3 rwm"), (True, "c 1:5 rwm"), (True, "c 1:7 rwm"), (True, "c 1:8 rwm"),
                        (True, "c 1:9 rwm"), (True, "c 5:0 rwm"), (True, "c 5:1 rwm"), (True, "c 5:2 rwm"),
                        (True, "c 136:* rwm")]


def device_rules(devices: list[dict]) -> list[tuple[bool, str]]:
    """Turn linux.resources.devices into (allow, "type major:minor access") lines for the v1 devices cgroup."""
    rules = []
    for device in devices:
        kind = device.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise CgroupError(f"invalid device rule type {kind!r}: use a, b or c")
        major = "*" if device.get("major") in (None, -1) else int(device["major"])
        minor = "*" if device.get("minor") in (None, -1) else int(device["minor"])
        access = device.get("access") or "rwm"
        if not access or set(access) - set("rwm"):
            raise CgroupError(f"invalid device rule access {access!r}: use letters from rwm")
        rules.append((bool(device.get("allow")), f"{kind} {major}:{minor} {access}"))
    return rules + DEFAULT_DEVICE_RULES


def cgroup_mounts(text: str) -> list[tuple[str, str, list[str]]]:
    """Return the cgroup and cgroup2 mounts of mountinfo text as (mount point, fstype, super options)."""
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[4].replace("\\040", " "), rest[0], rest[2].split(",")))
    return found


def read_cgroup_mounts() -> list[tuple[str, str, list[str]]]:
    """Return this process's cgroup mounts, from /proc/self/mountinfo (see cgroup_mounts)."""
    with open("/proc/self/mountinfo") as file:
        return cgroup_mounts(file.read())


def mounts_from_mountinfo(text: str) -> tuple[str, dict[str, str]]:
    """Return ("v2", {"": root}) or ("v1", {controller: mount point}) from mountinfo text.

    The unified tree counts only when it is mounted on /sys/fs/cgroup itself. A
    hybrid host (v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified)
    is treated as v1, because every controller lives in the v1 trees.
    """
    v1: dict[str, str] = {}
    for mount_point, fstype, options in cgroup_mounts(text):
        if fstype == "cgroup2" and mount_point == CGROUP_ROOT:
            return "v2", {"": mount_point}
        if fstype == "cgroup":
            for option in options:
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    if not v1:
        raise CgroupError("no cgroup file system is mounted at /sys/fs/cgroup; mount cgroup2 there "
                          "(mount -t cgroup2 none /sys/fs/cgroup) or run without resource limits")
    return "v1", v1


def detect() -> tuple[str, dict[str, str]]:
    with open("/proc/self/mountinfo") as file:
        return mounts_from_mountinfo(file.read())


class Cgroup:
    """A container's cgroup, at `path` (such as /minict/<id>) below each mount."""

    version = ""

    def __init__(self, mounts: dict[str, str], path: str):
        if not path.startswith("/") or ".." in path.split("/"):
            raise CgroupError(f"invalid cgroups path {path!r}: it must be absolute, without '..'")
        self.mounts = mounts
        self.path = path

    def directories(self) -> list[str]:
        seen = []
        for mount in self.mounts.values():
            directory = os.path.join(mount, self.path.lstrip("/"))
            if directory not in seen:
                seen.append(directory)
        return seen

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the calling process) into the cgroup."""
        for directory in self.directories():
            _write(os.path.join(directory, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for directory in self.directories():
            try:
                pids.update(int(line) for line in _read(os.path.join(directory, "cgroup.procs")).split())
            except OSError:
                continue
        return sorted(pids)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup, again until it is empty or `timeout` seconds pass."""
        import signal

        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def release(self) -> bool:
        """Read whether the OOM killer struck, then delete the cgroup (rm retries a failure); return the former."""
        try:
            oom_killed = self.oom_kills() > 0
        except OSError:
            oom_killed = False
        try:
            self.remove()
        except CgroupError:
            pass
        return oom_killed

    def remove(self, timeout: float = 2.0) -> None:
        """Delete the cgroup directories; processes still exiting make rmdir fail with EBUSY for a moment."""
        deadline = time.monotonic() + timeout
        for directory in self.directories():
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"failed to remove cgroup {directory}: {error.strerror}; "
                                          "rm removes it once its processes have exited") from None
                    time.sleep(0.01)


class CgroupV1(Cgroup):
    version = "v1"

    def _dir(self, controller: str) -> str | None:
        mount = self.mounts.get(controller)
        return os.path.join(mount, self.path.lstrip("/")) if mount else None

    def create(self, resources: dict | None = None) -> None:
        for directory in self.directories():
            os.makedirs(directory, 0o755, exist_ok=True)
        cpuset = self._dir("cpuset")
        if cpuset:
            # A new v1 cpuset starts empty and takes no task until it has cpus
            # and mems, so fill both from the nearest ancestor that has them.
            for name in ("cpuset.cpus", "cpuset.mems"):
                self._inherit_cpuset(cpuset, name)
        self.apply(resources or {})

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the calling process) into the cgroup.

        A single-threaded caller writes itself to `tasks` rather than to
        `cgroup.procs`. That moves the same process, but the kernel then skips
        the global threadgroup lock. The first write that takes that lock waits
        for an RCU grace period: 8 to 16 ms on the test machine (kernel 6.18),
        against 0.3 ms for `tasks`. runc writes to cgroup.procs and pays it.
        """
        name = "tasks" if pid == 0 and len(os.listdir("/proc/self/task")) == 1 else "cgroup.procs"
        for directory in self.directories():
            _write(os.path.join(directory, name), str(pid))

    def _inherit_cpuset(self, directory: str, name: str) -> None:
        """Copy cpuset.cpus or cpuset.mems down from the mount point to `directory`, filling empty levels."""
        current = self.mounts["cpuset"]
        value = _read_or_empty(os.path.join(current, name))
        for part in os.path.relpath(directory, current).split("/"):
            current = os.path.join(current, part)
            own = _read_or_empty(os.path.join(current, name))
            if own:
                value = own
            else:
                _write(os.path.join(current, name), value)

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        directory = self._dir("memory")
        if directory and memory:
            if memory.get("limit") is not None:
                _write(os.path.join(directory, "memory.limit_in_bytes"), str(memory["limit"]))
            if memory.get("swap") is not None:
                path = os.path.join(directory, "memory.memsw.limit_in_bytes")
                if not os.path.exists(path):
                    raise CgroupError("this kernel has no swap accounting (memory.memsw.limit_in_bytes is missing); "
                                      "drop --memory-swap, or boot with swapaccount=1")
                _write(path, str(memory["swap"]))
            if memory.get("reservation") is not None:
                _write(os.path.join(directory, "memory.soft_limit_in_bytes"), str(memory["reservation"]))
            if memory.get("swappiness") is not None:
                _write(os.path.join(directory, "memory.swappiness"), str(memory["swappiness"]))
            if memory.get("disableOOMKiller"):
                _write(os.path.join(directory, "memory.oom_control"), "1")
        cpu = resources.get("cpu") or {}
        directory = self._dir("cpu")
        if directory and cpu:
            if cpu.get("shares") is not None:
                _write(os.path.join(directory, "cpu.shares"), str(cpu["shares"]))
            if cpu.get("period") is not None:
                _write(os.path.join(directory, "cpu.cfs_period_us"), str(cpu["period"]))
            if cpu.get("quota") is not None:
                _write(os.path.join(directory, "cpu.cfs_quota_us"), str(cpu["quota"]))
        directory = self._dir("cpuset")
        if directory:
            if cpu.get("cpus"):
                _write(os.path.join(directory, "cpuset.cpus"), cpu["cpus"])
            if cpu.get("mems"):
                _write(os.path.join(directory, "cpuset.mems"), cpu["mems"])
        pids = resources.get("pids") or {}
        directory = self._dir("pids")
        if directory and pids.get("limit") is not None:
            limit = pids["limit"]
            _write(os.path.join(directory, "pids.max"), "max" if limit <= 0 else str(limit))
        block_io = resources.get("blockIO") or {}
        if block_io:
            directory = self._dir("blkio")
            if directory is None:
                raise CgroupError("linux.resources.blockIO needs the blkio controller, which is not mounted")
            if block_io.get("weight") is not None:
                _write_first(directory, ("blkio.weight", "blkio.bfq.weight"), str(block_io["weight"]))
            for key, name in THROTTLES.items():
                for rule in block_io.get(key) or []:
                    _write(os.path.join(directory, f"blkio.throttle.{name}"),
                           f"{rule['major']}:{rule['minor']} {rule['rate']}")
        for limit in resources.get("hugepageLimits") or []:
            directory = self._dir("hugetlb")
            if directory is None:
                raise CgroupError("linux.resources.hugepageLimits needs the hugetlb controller, which is not mounted")
            _write(os.path.join(directory, f"hugetlb.{limit['pageSize']}.limit_in_bytes"), str(limit["limit"]))
        directory = self._dir("devices")
        if directory and resources.get("devices"):
            for rule in device_rules(resources["devices"]):
                allow, text = rule
                _write(os.path.join(directory, "devices.allow" if allow else "devices.deny"), text)

    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        directory = self._dir("freezer")
        if directory is None:
            raise CgroupError("the freezer controller is not mounted; pause needs it")
        want = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + timeout
        while True:
            _write(os.path.join(directory, "freezer.state"), want)
            if _read(os.path.join(directory, "freezer.state")) == want:
                return
            if time.monotonic() > deadline:
                raise CgroupError(f"timed out: the cgroup did not become {want} within {timeout} seconds")
            time.sleep(0.01)

    def oom_kills(self) -> int:
        directory = self._dir("memory")
        return _flat_keyed(os.path.join(directory, "memory.oom_control")).get("oom_kill", 0) if directory else 0


class CgroupV2(Cgroup):
    version = "v2"

    @property
    def directory(self) -> str:
        return os.path.join(self.mounts[""], self.path.lstrip("/"))

    def create(self, resources: dict | None = None) -> None:
        root = self.mounts[""]
        parts = self.path.strip("/").split("/")
        current = root
        # Each ancestor must delegate the controllers to its children through
        # cgroup.subtree_control, from the root down to the container's parent.
        for part in parts:
            self._enable_controllers(current)
            current = os.path.join(current, part)
            os.makedirs(current, 0o755, exist_ok=True)
        self.apply(resources or {})

    @staticmethod
    def _enable_controllers(directory: str) -> None:
        try:
            available = _read(os.path.join(directory, "cgroup.controllers")).split()
            enabled = _read(os.path.join(directory, "cgroup.subtree_control")).split()
        except OSError:
            return
        missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
        if missing:
            _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in missing))

    def apply(self, resources: dict) -> None:
        directory = self.directory
        memory = resources.get("memory") or {}
        if memory.get("limit") is not None:
            limit = memory["limit"]
            _write(os.path.join(directory, "memory.max"), "max" if limit < 0 else str(limit))
            if memory.get("swap") is not None:
                # OCI's swap is memory plus swap, as in v1, but v2 limits swap alone.
                swap = memory["swap"]
                _write(os.path.join(directory, "memory.swap.max"), "max" if swap < 0 else str(max(swap - limit, 0)))
        if memory.get("reservation") is not None:
            _write(os.path.join(directory, "memory.low"), str(memory["reservation"]))
        cpu = resources.get("cpu") or {}
        if cpu.get("shares") is not None:
            _write(os.path.join(directory, "cpu.weight"), str(cpu_weight(cpu["shares"])))
        if cpu.get("quota") is not None or cpu.get("period") is not None:
            quota = cpu.get("quota")
            period = cpu.get("period") or 100000
            _write(os.path.join(directory, "cpu.max"),
                   f"{'max' if quota is None or quota < 0 else quota} {period}")
        if cpu.get("cpus"):
            _write(os.path.join(directory, "cpuset.cpus"), cpu["cpus"])
        if cpu.get("mems"):
            _write(os.path.join(directory, "cpuset.mems"), cpu["mems"])
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None:
            limit = pids["limit"]
            _write(os.path.join(directory, "pids.max"), "max" if limit <= 0 else str(limit))
        block_io = resources.get("blockIO") or {}
        if block_io.get("weight") is not None:
            # v1 weights run from 10 to 1000, v2's from 1 to 10000; map one range onto the other.
            weight = 1 + (int(block_io["weight"]) - 10) * 9999 // 990
            _write_first(directory, ("io.weight", "io.bfq.weight"), f"default {weight}")
        for key, name in THROTTLES.items():
            for rule in block_io.get(key) or []:
                field = V2_THROTTLE_FIELDS[name]
                _write(os.path.join(directory, "io.max"), f"{rule['major']}:{rule['minor']} {field}={rule['rate']}")
        for limit in resources.get("hugepageLimits") or []:
            _write(os.path.join(directory, f"hugetlb.{limit['pageSize']}.max"), str(limit["limit"]))

    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        _write(os.path.join(self.directory, "cgroup.freeze"), "1" if frozen else "0")
        deadline = time.monotonic() + timeout
        while _flat_keyed(os.path.join(self.directory, "cgroup.events")).get("frozen", int(frozen)) != int(frozen):
            if time.monotonic() > deadline:
                raise CgroupError(f"timed out: the cgroup did not {'freeze' if frozen else 'thaw'} within {timeout} seconds")
            time.sleep(0.01)

    def oom_kills(self) -> int:
        return _flat_keyed(os.path.join(self.directory, "memory.events")).get("oom_kill", 0)


def cgroup_of_spec(spec: dict) -> Cgroup | None:
    """Return the cgroup config.json names in linux.cgroupsPath; None when it names none or none is mounted."""
    path = (spec.get("linux") or {}).get("cgroupsPath")
    if not path:
        return None
    try:
        return open_cgroup(path)
    except CgroupError:
        return None


def open_cgroup(path: str, layout: tuple[str, dict[str, str]] | None = None) -> Cgroup:
    """Return the cgroup at `path` for this host's layout (or the given one)."""
    version, mounts = layout or detect()
    return CgroupV2(mounts, path) if version == "v2" else CgroupV1(mounts, path)
