"""Thin ctypes wrappers over the libc calls the stdlib of Python 3.11 lacks.

Each wrapper raises OSError with the errno and a message naming the call and
its operands, so a failure deep in container setup names the call that failed.
"""

from __future__ import annotations

import ctypes
import os
from signal import SIGCHLD

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(os.uname().machine, 155)


def _encode(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)),
        f"mount {source or 'none'} on {target} (type {fstype or 'none'}, flags {flags:#x}, data {data or ''!r})",
    )


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_encode(target), flags), f"umount2 {target} (flags {flags:#x})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare(flags {flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), f"setns(fd {fd}, type {nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(
        _libc.syscall(_SYS_PIVOT_ROOT, _encode(new_root), _encode(put_old)),
        f"pivot_root({new_root}, {put_old})",
    )


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), f"sethostname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2})")


for _name in ("PyOS_BeforeFork", "PyOS_AfterFork_Child", "PyOS_AfterFork_Parent"):
    getattr(ctypes.pythonapi, _name).restype = None  # void functions

_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120, "s390x": 120}.get(os.uname().machine, 56)
_libc.personality.argtypes = [ctypes.c_ulong]


def clone_process(flags: int) -> int:
    """fork(), but with namespace flags: the child starts in the new namespaces. Returns 0 in the child.

    Only a user namespace needs this. A PID namespace made together with it is
    owned by it, so the container's root may mount /proc there; unshare
    after fork cannot give that. Like fork, it is safe only while the
    process has a single thread.
    """
    # x86_64 and arm64 take (flags, stack, parent_tid, child_tid, tls); a NULL stack means "copy ours", as fork does.
    return _python_fork(lambda: _libc.syscall(_SYS_CLONE, ctypes.c_ulong(flags | SIGCHLD), None, None, None, None),
                        f"clone(flags {flags:#x})")


CLONE_INTO_CGROUP = 0x200000000
_SYS_CLONE3 = 435  # one number on every architecture: clone3 came after the tables were unified


class _CloneArgs(ctypes.Structure):
    """struct clone_args of clone3(2), up to its cgroup field (CLONE_ARGS_SIZE_VER2, 88 bytes)."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls", "set_tid",
        "set_tid_size", "cgroup")]


def clone_into_cgroup(flags: int, cgroup_fd: int) -> int:
    """Fork into the cgroup v2 directory `cgroup_fd`, with namespace flags, and return the pid (0 in the child).

    The child starts in its cgroup, so nothing writes to cgroup.procs. That
    write waits for an RCU grace period the first time (6 to 15 ms measured on
    this machine's cgroup2 tree). Needs Linux 5.7: older kernels fail with
    ENOSYS, EINVAL or E2BIG, and no child is made. Safe only while the process
    has a single thread, like fork.
    """
    args = _CloneArgs(flags=flags | CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=cgroup_fd)
    return _python_fork(lambda: _libc.syscall(_SYS_CLONE3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))),
                        f"clone3(flags {flags | CLONE_INTO_CGROUP:#x})")


def _python_fork(call, description: str) -> int:
    """Make a clone-like syscall with the bookkeeping os.fork() does around fork().

    Before the call, CPython takes the import lock and runs the before hooks
    of os.register_at_fork. After it, the parent releases the lock, and the
    child resets the interpreter's thread state and locks and runs the child hooks.
    """
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = call()
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    error = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(error, f"{description}: {os.strerror(error)}")
    return pid


def personality(persona: int) -> None:
    _check(_libc.personality(persona), f"personality({persona:#x})")
