"""exec: start a new process inside a running container.

The new process must end up where the container's own processes are: in
each of its namespaces, in its cgroup, under its root, with its environment,
user rules and capabilities. The steps:

1. open /proc/<init>/ns/* while the init's start time still matches, so a
   reused pid cannot send us into a stranger's namespaces;
2. setns(CLONE_NEWPID) here, which only moves future children, then fork;
3. in the child: enter the cgroup, then setns into ipc, uts, net, cgroup and
   last mnt (joining the mount namespace also moves the root and working
   directory to the container's);
4. resolve the user from the image's files, open a pty if asked, chdir, set
   rlimits, drop capabilities, switch user, execve.

Failures before execve travel over a close-on-exec pipe, as in init.
"""

from __future__ import annotations

import json
import os
import socket

from minict.linux import syscalls as sc
from minict.runtime.init import (NAMESPACE_FLAGS, STATUS_SETUP_FAILED, SetupError, Tracer, _close_inherited_fds,
                                 _exec_error, _report, find_executable, resolve_user, set_rlimits, setup_terminal,
                                 switch_user)

# The order to join them in: user first, because it grants the rights to join the others in it, and
# mnt last, because after it the host's /proc is out of reach.
JOIN_ORDER = ("user", "ipc", "uts", "net", "cgroup", "mnt")
_PROC_NAMES = {"user": "user", "ipc": "ipc", "uts": "uts", "net": "network", "cgroup": "cgroup", "mnt": "mount",
               "pid": "pid"}


def open_namespaces(pid: int, start_time: int, spec: dict) -> dict[str, int]:
    """Open the init's namespaces that differ from ours, then check that the pid still belongs to the container."""
    from minict.state import process_start_time

    opened = {}
    try:
        for name in ("pid",) + JOIN_ORDER:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                opened[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        for fd in opened.values():
            os.close(fd)
        raise SetupError("the container is not running: its init process has exited") from None
    if process_start_time(pid) != start_time:
        for fd in opened.values():
            os.close(fd)
        raise SetupError("the container is not running: its init process has exited")
    return opened


def start(spec: dict, pid: int, start_time: int, process: dict, *, terminal: bool = False,
          explain: bool = False, console_path: str | None = None) -> tuple[int, int | None]:
    """Fork a process into the container of init `pid` running `process`; return its pid and pty master.

    With `console_path` (runc's --console-socket) the pty master goes to that
    unix socket instead, and the returned master is None.
    """
    from minict.runtime.launcher import ContainerStartError, clone_into, copy_window_size

    trace = Tracer(explain)
    try:
        namespaces = open_namespaces(pid, start_time, spec)
    except SetupError as error:
        raise ContainerStartError(str(error), STATUS_SETUP_FAILED) from None
    from minict.runtime.cgroups import cgroup_of_spec

    cgroup = cgroup_of_spec(spec)
    if "pid" in namespaces:
        trace("setns(pid namespace of the init, CLONE_NEWPID)", "the next child of minict lands in the container's PID namespace")
        sc.setns(namespaces.pop("pid"), sc.CLONE_NEWPID)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    console_parent = console_child = None
    if terminal and console_path:
        console_child = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console_child.connect(console_path)
        except OSError as error:
            raise ContainerStartError(f"failed to connect to the console socket {console_path}: {error.strerror}",
                                      STATUS_SETUP_FAILED) from None
    elif terminal:
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = clone_into(cgroup, 0, trace)  # on cgroup v2, born in the cgroup: no join below
    joined = child is not None
    if child is None:
        child = os.fork()
    if child == 0:
        os.close(error_read)
        if console_parent is not None:
            console_parent.close()
        _child(spec, process, namespaces, None if joined else cgroup, error_write, console_child, console_path, trace)
        os._exit(STATUS_SETUP_FAILED)
    for fd in namespaces.values():
        os.close(fd)
    os.close(error_write)
    master = None
    if console_child is not None:
        console_child.close()
    if console_parent is not None:
        try:
            _, fds, _, _ = socket.recv_fds(console_parent, 16, 1)
        except OSError:
            fds = []
        if fds:
            master = fds[0]
            copy_window_size(master)
            try:
                console_parent.send(b"1")
            except OSError:
                pass
        console_parent.close()
    data = b""
    while True:
        chunk = os.read(error_read, 65536)
        if not chunk:
            break
        data += chunk
    os.close(error_read)
    if data:
        os.waitpid(child, 0)
        if master is not None:
            os.close(master)
        try:
            report = json.loads(data)
        except ValueError:
            report = {"status": STATUS_SETUP_FAILED, "message": data.decode(errors="replace")}
        raise ContainerStartError(report.get("message", "exec failed"), int(report.get("status", STATUS_SETUP_FAILED)))
    return child, master


def _child(spec: dict, process: dict, namespaces: dict[str, int], cgroup, error_fd: int,
           console_socket: socket.socket | None, console_path: str | None, trace: Tracer) -> None:
    import signal

    try:
        for signum in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                       signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        if cgroup is not None:
            trace(f"write 0 to {cgroup.path}/tasks (v1) or cgroup.procs (v2)", "the container's limits cover this process too")
            cgroup.join()
        for name in JOIN_ORDER:
            if name in namespaces:
                flag = NAMESPACE_FLAGS[_PROC_NAMES[name]]
                trace(f"setns(/proc/<init>/ns/{name})", f"join the container's {name} namespace")
                sc.setns(namespaces.pop(name), flag)
                if name == "user":
                    os.setresgid(0, 0, 0)  # root of the container's user namespace; switch_user sets the real ids
                    os.setresuid(0, 0, 0)
        os.chdir("/")
        exec_spec = dict(spec, process=process)
        resolve_user(exec_spec, trace)
        process = exec_spec["process"]
        if console_socket is not None:
            def send_master(master: int) -> None:
                socket.send_fds(console_socket, [b"/dev/ptmx"], [master])
                if console_path is None:
                    console_socket.recv(1)  # minict's own exec sets the window size first
            setup_terminal(send_master, trace, console=False)
            console_socket.close()
        cwd = process.get("cwd", "/")
        try:
            os.chdir(cwd)
        except OSError as error:
            raise SetupError(f"failed to enter the working directory {cwd}: {error.strerror}; give an existing directory with -w") from None
        set_rlimits(process, trace)
        env = list(process.get("env") or [])
        args = process.get("args") or []
        if not args:
            raise SetupError("missing command: give one after the container name")
        executable = find_executable(args[0], env)
        _close_inherited_fds(error_fd)
        switch_user(process, trace)
        trace(f"execve({executable!r}, {args!r}, env[{len(env)}])", "the new process of the container")
        try:
            os.execve(executable, args, {k: v for k, _, v in (e.partition("=") for e in env) if k})
        except OSError as error:
            raise _exec_error(executable, error) from None
    except SetupError as error:
        _report(error_fd, error.status, str(error))
    except OSError as error:
        _report(error_fd, STATUS_SETUP_FAILED, str(error) if error.filename is None else f"{error.strerror}: {error.filename}")
    except BaseException as error:
        _report(error_fd, STATUS_SETUP_FAILED, f"{error.__class__.__name__}: {error}")
