"""The container's first process: from fork to execve, one kernel step at a time.

The launcher forks this process into a new PID namespace, so it is PID 1 of
the container. It then runs these steps in order. Each is one or two kernel
calls, and --explain prints every call with the reason for it:

 1. unshare the other namespaces (mount, UTS, IPC, network, cgroup);
 2. make every mount private, so nothing below propagates to the host;
 3. mount the root filesystem (overlayfs of the layer snapshots) on root.path;
 4. mount the spec's mounts inside it (/proc, /dev, /dev/pts, /sys, binds);
 5. create the device nodes and /dev links;
 6. set the hostname;
 7. pivot_root into the new root and detach the old one;
 8. mask and make read-only the paths the spec lists;
 9. resolve the user, create the working directory, set rlimits;
10. drop capabilities, switch groups and user, set no_new_privs;
11. execve the command.

Any failure before execve is sent to the launcher over a pipe as JSON with an
exit status (125 setup failed, 126 cannot execute, 127 not found). A
successful execve closes the pipe, because it is close-on-exec.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import struct

from minict.linux import capabilities as caps
from minict.linux import syscalls as sc
from minict.runtime import hooks, mounts, seccomp
from minict.runtime.paths import secure_join
# Imported here, not where used: after pivot_root the host's files, minict's among them, are gone.
from minict.runtime.user import UserError, resolve

STATUS_SETUP_FAILED = 125
STATUS_CANNOT_EXECUTE = 126
STATUS_NOT_FOUND = 127

OVERLAY_ANNOTATION = "org.minict.rootfs.overlay"
USER_ANNOTATION = "org.minict.user"
INIT_ANNOTATION = "org.minict.init"

NAMESPACE_FLAGS = {
    "pid": sc.CLONE_NEWPID, "network": sc.CLONE_NEWNET, "mount": sc.CLONE_NEWNS, "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS, "user": sc.CLONE_NEWUSER, "cgroup": sc.CLONE_NEWCGROUP, "time": sc.CLONE_NEWTIME,
}
_NAMESPACE_NAMES = {flag: f"CLONE_NEW{name.upper() if name != 'mount' else 'NS'}" for name, flag in NAMESPACE_FLAGS.items()}
_NAMESPACE_NAMES[sc.CLONE_NEWNET] = "CLONE_NEWNET"

# Linux resource numbers (asm-generic/resource.h); Python's resource module lacks some of them.
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

_ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86_64",
                 183: "aarch64", 243: "riscv64", 258: "loongarch64"}


class SetupError(Exception):
    """A failure before execve, with the exit status the launcher should report."""

    def __init__(self, message: str, status: int = STATUS_SETUP_FAILED):
        super().__init__(message)
        self.status = status


class Tracer:
    """Prints each kernel call with its reason on stderr when --explain is on."""

    def __init__(self, enabled: bool, stream_fd: int = 2):
        self.enabled = enabled
        self.fd = stream_fd

    def __call__(self, call: str, why: str) -> None:
        if self.enabled:
            os.write(self.fd, f"explain: {call}\n         {why}\n".encode())


def namespace_flag_names(flags: int) -> str:
    return "|".join(name for flag, name in _NAMESPACE_NAMES.items() if flags & flag) or "0"


def _bring_loopback_up(trace: Tracer) -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        trace("ioctl(SIOCSIFFLAGS, 'lo', IFF_UP)", "a new network namespace has only lo, and it starts down")
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def _join_namespace(path: str, flag: int, trace: Tracer) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        trace(f"setns(open({path!r}), {namespace_flag_names(flag)})", "join an existing namespace named by the spec")
        sc.setns(fd, flag)
    finally:
        os.close(fd)


def enter_namespaces(spec: dict, trace: Tracer) -> int:
    """Unshare or join every namespace in the spec except pid (the launcher's job). Returns new flags."""
    flags = 0
    for namespace in spec.get("linux", {}).get("namespaces", []):
        kind = namespace.get("type")
        if kind not in NAMESPACE_FLAGS:
            raise SetupError(f"unknown namespace type {kind!r} in config.json")
        if kind in ("pid", "user"):
            continue
        if namespace.get("path"):
            _join_namespace(namespace["path"], NAMESPACE_FLAGS[kind], trace)
        else:
            flags |= NAMESPACE_FLAGS[kind]
    if flags:
        reason = "give the container its own mount table, hostname and IPC objects"
        if flags & sc.CLONE_NEWNET:
            reason += ", and its own network"
        if flags & sc.CLONE_NEWCGROUP:
            reason += ", with its cgroup as the cgroup root"
        trace(f"unshare({namespace_flag_names(flags)})", reason)
        sc.unshare(flags)
    if flags & sc.CLONE_NEWNET:
        _bring_loopback_up(trace)
    return flags


def _overlay_data(overlay: dict) -> tuple[str, str | None]:
    """Build overlayfs mount data; long lowerdir lists use paths relative to a common directory.

    mount(2) takes at most one page of data, so with many layers the lowerdirs
    are given relative to their shared parent after a chdir there.
    """
    lowers = overlay["lowerdir"]
    data = f"lowerdir={':'.join(lowers)},upperdir={overlay['upperdir']},workdir={overlay['workdir']}"
    if len(data) < 4000:
        return data, None
    base = os.path.commonpath(lowers)
    relative = [os.path.relpath(path, base) for path in lowers]
    data = f"lowerdir={':'.join(relative)},upperdir={overlay['upperdir']},workdir={overlay['workdir']}"
    return data, base


def mount_rootfs(spec: dict, rootfs: str, trace: Tracer) -> None:
    propagation = {
        "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE, "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE,
        "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED, "unbindable": sc.MS_UNBINDABLE,
        "runbindable": sc.MS_UNBINDABLE,
    }.get(spec.get("linux", {}).get("rootfsPropagation", "rprivate"), sc.MS_PRIVATE)
    trace(f"mount(NULL, '/', NULL, MS_REC|{mounts.describe_flags(propagation)})",
          "stop mounts made in the container from propagating to the host, and the host's from arriving")
    sc.mount(None, "/", None, sc.MS_REC | propagation)

    overlay_text = spec.get("annotations", {}).get(OVERLAY_ANNOTATION)
    if overlay_text:
        overlay = json.loads(overlay_text)
        data, base = _overlay_data(overlay)
        trace(f"mount('overlay', {rootfs!r}, 'overlay', 0, '{data[:120]}{'...' if len(data) > 120 else ''}')",
              f"stack {len(overlay['lowerdir'])} read-only layer snapshots under the container's own upper directory")
        if base:
            previous = os.getcwd()
            os.chdir(base)
            sc.mount("overlay", rootfs, "overlay", 0, data)
            os.chdir(previous)
        else:
            sc.mount("overlay", rootfs, "overlay", 0, data)
    else:
        trace(f"mount({rootfs!r}, {rootfs!r}, NULL, MS_BIND|MS_REC)", "pivot_root needs the new root to be a mount point")
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def pivot_into(rootfs: str, trace: Tracer) -> None:
    os.chdir(rootfs)
    trace(f"pivot_root('.', '.') in {rootfs}",
          "make the container's root the root of this mount namespace; the old root stacks below it")
    sc.pivot_root(".", ".")
    trace("umount2('.', MNT_DETACH)", "detach the old root, so no host path stays reachable")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def _architecture_hint(path: str) -> str:
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return ""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return ""
    machine = struct.unpack("<H" if header[5] == 1 else ">H", header[18:20])[0]
    name = _ELF_MACHINES.get(machine, f"machine type {machine}")
    host = os.uname().machine
    if name == host:
        return ""
    return (f": {path} is built for {name} and this machine is {host}; pull the image for this machine "
            "(--platform), or register a qemu-user emulator with binfmt_misc")


def find_executable(name: str, env: list[str]) -> str:
    if "/" in name:
        return name
    path_value = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for entry in env:
        if entry.startswith("PATH="):
            path_value = entry[5:]
    for directory in path_value.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    raise SetupError(f"exec: {name!r}: executable file not found in $PATH", STATUS_NOT_FOUND)


def set_rlimits(process: dict, trace: Tracer) -> None:
    for limit in process.get("rlimits") or []:
        kind = limit.get("type")
        if kind not in RLIMITS:
            raise SetupError(f"unknown rlimit type {kind!r} in config.json")
        values = (limit.get("soft", 0), limit.get("hard", 0))
        trace(f"setrlimit({kind}, soft={values[0]}, hard={values[1]})", "resource limit from the spec")
        # OCI writes "unlimited" as the largest uint64; Python's resource module calls it RLIM_INFINITY.
        numbers = tuple(resource.RLIM_INFINITY if v >= (1 << 63) - 1 else v for v in values)
        try:
            resource.setrlimit(RLIMITS[kind], numbers)
        except (ValueError, OSError) as error:
            raise SetupError(f"setrlimit {kind} soft={values[0]} hard={values[1]}: {error}; raising a hard limit "
                             "needs CAP_SYS_RESOURCE") from error


def switch_user(process: dict, trace: Tracer) -> None:
    """setgroups, setgid, setuid in that order, keeping the spec's capabilities across the uid change."""
    user = process.get("user", {})
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    capability_sets = process.get("capabilities") or {}
    bounding = caps.mask(capability_sets.get("bounding", []))
    if "umask" in user:
        os.umask(int(user["umask"]))

    trace(f"prctl(PR_CAPBSET_DROP) x{caps.last_cap() + 1 - bin(bounding).count('1')}",
          "shrink the bounding set: no process in the container can ever regain the rest")
    caps.drop_bounding(bounding)
    if uid != 0:
        sc.prctl(caps.PR_SET_KEEPCAPS, 1)
    trace(f"setgroups({groups})", "supplementary groups; must come first, while still root")
    os.setgroups(groups)
    trace(f"setresgid({gid}, {gid}, {gid})", "primary group")
    os.setresgid(gid, gid, gid)
    trace(f"setresuid({uid}, {uid}, {uid})", "the container user; after this, root privileges are gone unless uid is 0")
    os.setresuid(uid, uid, uid)
    if uid != 0:
        sc.prctl(caps.PR_SET_KEEPCAPS, 0)
    effective = caps.mask(capability_sets.get("effective", []))
    permitted = caps.mask(capability_sets.get("permitted", []))
    ambient = caps.mask(capability_sets.get("ambient", []))
    # The kernel raises an ambient capability only if it is permitted and inheritable too, so
    # the ambient set joins the inheritable one (runc's default spec lists ambient without inheritable).
    inheritable = caps.mask(capability_sets.get("inheritable", [])) | (ambient & permitted)
    trace(f"capset(effective={effective:#x}, permitted={permitted:#x}, inheritable={inheritable:#x})",
          "the capabilities the container keeps")
    caps.capset(effective, permitted, inheritable)
    ambient &= permitted
    if ambient:
        caps.set_ambient(ambient)
    if process.get("noNewPrivileges"):
        trace("prctl(PR_SET_NO_NEW_PRIVS, 1)", "setuid binaries and file capabilities no longer grant privileges")
        sc.prctl(caps.PR_SET_NO_NEW_PRIVS, 1)


def resolve_user(spec: dict, trace: Tracer) -> None:
    """Fill process.user from the image's /etc/passwd when the spec names the user by name."""
    text = spec.get("annotations", {}).get(USER_ANNOTATION)
    if not text:
        return
    try:
        user = resolve(text)
    except UserError as error:
        raise SetupError(str(error)) from None
    trace(f"read /etc/passwd, /etc/group -> uid {user.uid}, gid {user.gid}, groups {user.additional_gids}",
          f"resolve user {text!r} from the image's own files, inside the container")
    process = spec["process"]
    process["user"] = dict(process.get("user", {}), uid=user.uid, gid=user.gid,
                           additionalGids=sorted(set((process.get("user", {}).get("additionalGids") or [])
                                                     + user.additional_gids)))
    env = process.setdefault("env", [])
    if not any(entry.startswith("HOME=") for entry in env):
        env.append(f"HOME={user.home}")


def prepare_cwd(process: dict, trace: Tracer) -> None:
    cwd = process.get("cwd", "/")
    if not cwd.startswith("/"):
        raise SetupError(f"process.cwd {cwd!r} must be an absolute path")
    if not os.path.isdir(cwd):
        if os.path.lexists(cwd):
            raise SetupError(f"working directory {cwd} exists but is not a directory")
        trace(f"mkdir -p {cwd!r}", "the working directory does not exist in the image, so create it as docker does")
        os.makedirs(cwd, 0o755)


def setup_terminal(send_master, trace: Tracer, console: bool = True) -> None:
    """Open a pty in the container's own devpts, hand its master on with `send_master`, make it our terminal."""
    trace("open('/dev/ptmx', O_RDWR|O_NOCTTY)", "a pseudo-terminal from the container's own devpts instance")
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock the slave
    number = struct.unpack("I", fcntl.ioctl(master, 0x80045430, struct.pack("I", 0)))[0]  # TIOCGPTN
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    trace(f"sendmsg(SCM_RIGHTS, master of {slave_path})", "whoever copies the terminal gets the master")
    # With minict's own launcher this waits until the window size is set, so the command starts with it.
    send_master(master)
    os.close(master)
    if console:
        if not os.path.lexists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        trace(f"mount({slave_path!r}, '/dev/console', NULL, MS_BIND)", "the terminal is also the container's console")
        sc.mount(slave_path, "/dev/console", None, sc.MS_BIND)
    trace("setsid(); ioctl(TIOCSCTTY)", "a new session whose controlling terminal is the pty")
    os.setsid()
    fcntl.ioctl(slave, 0x540E, 0)  # TIOCSCTTY
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def request(sync_fd: int, message: dict, fds: list[int] | None = None) -> dict:
    """Send a message to the launcher and wait for its reply."""
    sync = socket.socket(fileno=sync_fd)
    try:
        if fds:
            socket.send_fds(sync, [json.dumps(message).encode()], fds)
        else:
            sync.send(json.dumps(message).encode())
        reply = sync.recv(65536)
    finally:
        sync.detach()
    if not reply:
        raise SetupError("the launcher went away during setup")
    return json.loads(reply)


def write_sysctls(sysctls: dict, trace: Tracer) -> None:
    """Set linux.sysctl through /proc/sys; the container's namespaces decide which instance changes."""
    for key, value in sysctls.items():
        if not key or ".." in key or key.startswith((".", "/")):
            raise SetupError(f"invalid sysctl name {key!r} in config.json")
        path = "/proc/sys/" + key.replace(".", "/")
        trace(f"write {path} <- {value!r}", "sysctl from the spec")
        try:
            with open(path, "w") as file:
                file.write(str(value))
        except OSError as error:
            raise SetupError(f"failed to set sysctl {key}={value}: {error.strerror}") from None


def wait_for_start(fifo_fd: int, trace: Tracer) -> None:
    """Block until `start` opens the exec FIFO, then write one byte to confirm that the init went on."""
    trace("open(exec.fifo, O_WRONLY)", "create is done: wait here until start opens the FIFO for reading")
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def container_init(spec: dict, bundle: str, error_fd: int, terminal: bool, trace: Tracer, cgroup=None,
                   create=None, user_namespace: bool = False) -> None:
    """Run the setup steps and execve the container's command; never returns.

    `error_fd` is the socket to the launcher. With `create` (minict-runc
    create), the init reports ready and waits at the exec FIFO for start.
    """
    try:
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                       signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        process = spec.get("process") or {}
        linux = spec.get("linux") or {}
        if cgroup is not None:
            trace(f"write 0 to {cgroup.path}/{'tasks' if cgroup.version == 'v1' else 'cgroup.procs'} ({cgroup.version})",
                  "enter the container's cgroup first: its limits then cover every later process, and the "
                  "cgroup namespace made next has this cgroup as its root")
            cgroup.join()
        if user_namespace:
            # Cloned into a new user namespace: no ids until the launcher writes the maps.
            request(error_fd, {"type": "userns"})
            trace("setresgid(0, 0, 0); setresuid(0, 0, 0)", "become root of the new user namespace")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        else:
            join_user_namespace(spec, trace)
        scmp_filter = None
        if linux.get("seccomp"):
            try:
                scmp_filter = seccomp.build(linux["seccomp"])
            except seccomp.SeccompError as error:
                raise SetupError(str(error)) from None
        enter_namespaces(spec, trace)
        root = spec.get("root", {})
        rootfs = root.get("path", "rootfs")
        if not os.path.isabs(rootfs):
            rootfs = os.path.join(bundle, rootfs)
        mount_rootfs(spec, rootfs, trace)
        dev_is_tmpfs = False
        for entry in spec.get("mounts") or []:
            mounts.mount_entry(rootfs, bundle, entry, trace)
            if entry.get("destination") == "/dev" and entry.get("type") == "tmpfs":
                dev_is_tmpfs = True
        if dev_is_tmpfs:
            mounts.populate_dev(rootfs, linux.get("devices") or [], trace)
        elif linux.get("devices"):
            mounts.populate_dev(rootfs, linux["devices"], trace, defaults=False)
        hostname = spec.get("hostname")
        if hostname:
            trace(f"sethostname({hostname!r})", "the hostname, in the container's own UTS namespace")
            sc.sethostname(hostname)
        if linux.get("sysctl"):
            write_sysctls(linux["sysctl"], trace)
        spec_hooks = spec.get("hooks") or {}
        state = dict(create.state) if create is not None else {}
        if create is not None or spec_hooks.get("prestart") or spec_hooks.get("createRuntime"):
            # The launcher runs these hooks in its namespaces, and replies with this process's host pid.
            reply = request(error_fd, {"type": "hooks"})
            state.update(pid=reply.get("pid", 0), status="creating")
        if spec_hooks.get("createContainer"):
            trace("run the createContainer hooks", "in the container's namespaces, before pivot_root")
            try:
                hooks.run(spec_hooks, "createContainer", state)
            except hooks.HookError as error:
                raise SetupError(str(error)) from None
        if spec_hooks.get("startContainer"):
            # hooks.run imports subprocess, which pivot_root would put out of reach: load it now.
            import subprocess  # noqa: F401
        # The launcher opened these before the fork, while it could still reach the host's paths.
        fifo_fd = create.fifo_fd if create is not None else None
        console = create.console if create is not None else None
        if create is not None and terminal and console is None:
            raise SetupError("process.terminal is true, so --console-socket is required")

        pivot_into(rootfs, trace)
        if terminal:
            if console is not None:
                setup_terminal(lambda master: socket.send_fds(console, [b"/dev/ptmx"], [master]), trace)
                console.close()
            else:
                setup_terminal(lambda master: request(error_fd, {"type": "pty"}, [master]), trace)
        for path in linux.get("maskedPaths") or []:
            mounts.mask_path(path, trace)
        for path in linux.get("readonlyPaths") or []:
            mounts.readonly_path(path, trace)
        if root.get("readonly"):
            trace("mount(NULL, '/', NULL, MS_BIND|MS_REMOUNT|MS_RDONLY)", "root.readonly: the root filesystem is read-only")
            sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)

        resolve_user(spec, trace)
        process = spec["process"]
        args = process.get("args") or []
        if not args:
            raise SetupError("no command specified: the image has no Entrypoint or Cmd; give one after --")
        prepare_cwd(process, trace)
        os.chdir(process.get("cwd", "/"))
        set_rlimits(process, trace)
        env = list(process.get("env") or [])
        if fifo_fd is not None:
            os.write(error_fd, b'{"type": "ready"}')
            wait_for_start(fifo_fd, trace)
            if spec_hooks.get("startContainer"):
                trace("run the startContainer hooks", "in the container, after start, before execve")
                try:
                    hooks.run(spec_hooks, "startContainer", dict(state, status="created"))
                except hooks.HookError as error:
                    raise SetupError(str(error)) from None
        executable = find_executable(args[0], env)
        _close_inherited_fds(error_fd)
        persona = linux.get("personality")
        if persona:
            set_personality(persona, trace)
        no_new_privileges = bool(process.get("noNewPrivileges"))
        if scmp_filter is not None and not no_new_privileges:
            # Without no_new_privs the kernel lets only a CAP_SYS_ADMIN holder load a filter, so load it while root.
            trace("seccomp(SECCOMP_SET_MODE_FILTER)", "linux.seccomp, loaded before the capabilities are dropped")
            _load_seccomp(scmp_filter)
        switch_user(process, trace)
        if scmp_filter is not None and no_new_privileges:
            trace("seccomp(SECCOMP_SET_MODE_FILTER)", "linux.seccomp, loaded last, so setup calls need not pass it")
            _load_seccomp(scmp_filter)
        if spec.get("annotations", {}).get(INIT_ANNOTATION) == "true":
            run_as_init(executable, args, env, error_fd, trace)
        trace(f"execve({executable!r}, {args!r}, env[{len(env)}])", "replace this process with the container's command")
        try:
            os.execve(executable, args, dict(_split_env(env)))
        except OSError as error:
            raise _exec_error(executable, error) from None
    except SetupError as error:
        _report(error_fd, error.status, str(error))
    except OSError as error:
        _report(error_fd, STATUS_SETUP_FAILED, str(error) if error.filename is None else f"{error.strerror}: {error.filename}")
    except BaseException as error:  # report anything to the launcher rather than die silently
        _report(error_fd, STATUS_SETUP_FAILED, f"{error.__class__.__name__}: {error}")


def run_as_init(executable: str, args: list[str], env: list[str], error_fd: int, trace: Tracer) -> None:
    """--init: stay PID 1, run the command as a child, forward signals to it and reap every orphan.

    A command that is not written to be PID 1 neither reaps the orphans the
    kernel hands to it (they stay zombies) nor has handlers for SIGTERM (which
    PID 1 then ignores). This loop does both, then exits with the command's
    status. Signals are blocked and taken with sigwaitinfo, so none is lost
    between two waits.
    """
    caught = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
    trace("fork(); the parent stays PID 1 as a reaper", "--init: PID 1 forwards signals and reaps zombies")
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        trace(f"execve({executable!r}, {args!r}, env[{len(env)}])", "the container's command, as PID 2")
        try:
            os.execve(executable, args, dict(_split_env(env)))
        except OSError as error:
            exec_error = _exec_error(executable, error)
            _report(error_fd, exec_error.status, str(exec_error))
    # The reaper never calls execve, so close-on-exec never closes what it
    # inherited. Readers of those pipes (the launcher, run -d) wait for EOF.
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
    try:
        with open("/proc/self/comm", "w") as file:
            file.write("minict-init")
    except OSError:
        pass
    while True:
        info = signal.sigwaitinfo(caught)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(pid, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(STATUS_SETUP_FAILED)
            if reaped == 0:
                break
            if reaped == pid:
                os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _load_seccomp(scmp_filter) -> None:
    try:
        seccomp.load(scmp_filter)
    except seccomp.SeccompError as error:
        raise SetupError(str(error)) from None


PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def set_personality(persona: dict, trace: Tracer) -> None:
    domain = persona.get("domain", "LINUX")
    if domain not in PERSONALITY_DOMAINS or persona.get("flags"):
        raise SetupError(f"unsupported linux.personality {persona!r}: use domain LINUX or LINUX32 without flags")
    trace(f"personality({domain})", "linux.personality: the execution domain, such as 32-bit uname")
    sc.personality(PERSONALITY_DOMAINS[domain])


def join_user_namespace(spec: dict, trace: Tracer) -> None:
    """Enter a user namespace the spec names by path; it must come before the other namespaces."""
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "user" and namespace.get("path"):
            _join_namespace(namespace["path"], sc.CLONE_NEWUSER, trace)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)


def _close_inherited_fds(keep: int) -> None:
    """Mark every descriptor above stderr close-on-exec, so the container inherits only 0, 1 and 2."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the descriptor of the listing itself is already closed


def _split_env(env: list[str]):
    for entry in env:
        key, _, value = entry.partition("=")
        if key:
            yield key, value


def _exec_error(executable: str, error: OSError) -> SetupError:
    if error.errno == errno.ENOENT:
        return SetupError(f"exec {executable}: no such file or directory (a missing interpreter or loader?)",
                          STATUS_NOT_FOUND)
    if error.errno == errno.ENOEXEC:
        return SetupError(f"exec {executable}: exec format error{_architecture_hint(executable)}", STATUS_CANNOT_EXECUTE)
    if error.errno in (errno.EACCES, errno.EPERM):
        return SetupError(f"exec {executable}: permission denied", STATUS_CANNOT_EXECUTE)
    return SetupError(f"exec {executable}: {error.strerror}", STATUS_CANNOT_EXECUTE)


def _report(error_fd: int, status: int, message: str) -> None:
    """Send a setup failure to the launcher and exit. After create's ready the launcher is gone, so print it."""
    data = json.dumps({"status": status, "message": message}).encode()
    try:
        if stat.S_ISSOCK(os.fstat(error_fd).st_mode):
            # MSG_NOSIGNAL: SIGPIPE is at its default here, and would end the process before it could print.
            sync = socket.socket(fileno=error_fd)
            try:
                sync.send(data, socket.MSG_NOSIGNAL)
            finally:
                sync.detach()
        else:
            os.write(error_fd, data)  # exec's pipe
    except OSError:
        try:
            os.write(2, f"minict: error: {message}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(status)

