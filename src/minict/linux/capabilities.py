"""Linux capabilities: names, the bounding set, capset(2) and ambient capabilities."""

from __future__ import annotations

import ctypes
import os

from minict.linux import syscalls

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
NUMBERS = {name: number for number, name in enumerate(NAMES)}

#: The capabilities docker and podman give a container by default.
DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_NO_NEW_PRIVS = 38
_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.capset.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data * 2)]


_last_cap: int | None = None


def last_cap() -> int:
    """Return the highest capability number of this kernel, read once because every drop needs it."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as file:
                _last_cap = int(file.read())
        except OSError:
            _last_cap = len(NAMES) - 1
    return _last_cap


def available() -> list[str]:
    """Return the capabilities this process may hand on: its bounding set (root in a container may lack some)."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("CapBnd:"):
                bits = int(line.split()[1], 16)
                return [name for number, name in enumerate(NAMES[:last_cap() + 1]) if bits >> number & 1]
    return NAMES[:last_cap() + 1]


def parse(name: str) -> int:
    """Return the number of a capability given as CAP_X or X, in any case."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in NUMBERS:
        raise ValueError(f"unknown capability {name!r}")
    return NUMBERS[key]


def mask(names: list[str]) -> int:
    value = 0
    for name in names:
        number = parse(name)
        if number <= last_cap():
            value |= 1 << number
    return value


def drop_bounding(keep: int) -> None:
    """Drop every capability outside `keep` from the bounding set (needs CAP_SETPCAP)."""
    for number in range(last_cap() + 1):
        if not keep & (1 << number):
            syscalls.prctl(PR_CAPBSET_DROP, number)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for index in range(2):
        shift = 32 * index
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"capset(effective {effective:#x}, permitted {permitted:#x}): {os.strerror(error)}")


def set_ambient(ambient: int) -> None:
    syscalls.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for number in range(last_cap() + 1):
        if ambient & (1 << number):
            syscalls.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)
