"""The launcher: fork the container init into a new PID namespace, then wait for it.

The launcher calls unshare(CLONE_NEWPID) on itself, which moves only its
future children into a new PID namespace, then forks once: the child is PID 1
there and runs minict.runtime.init. The launcher must not fork again after
that, because any further child would land in the container's namespace.

While the container runs, the launcher forwards the usual signals to it,
copies a terminal when there is one, and returns the exit status in the shell
convention (128+N for death by signal N).
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys

from minict.errors import MinictError
from minict.linux import syscalls as sc
from minict.runtime.init import STATUS_SETUP_FAILED, Tracer, container_init, namespace_flag_names

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# With a terminal, SIGWINCH resizes the container's pty instead of being forwarded.


class ContainerStartError(MinictError):
    """The container failed before execve; exit_code is docker's status for the cause."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def exit_status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def _wants_new_pid_namespace(spec: dict) -> str | None | bool:
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "pid":
            return namespace.get("path") or True
    return False


class CreateOptions:
    """Settings of `minict-runc create`, whose init stops at the exec FIFO until `start`.

    `fifo` is the FIFO's path, `console_socket` the unix socket that gets the
    pty master, and `state` the id, bundle and annotations hooks receive.
    """

    def __init__(self, fifo: str, console_socket: str | None, state: dict):
        self.fifo = fifo
        self.console_socket = console_socket
        self.state = state
        self.fifo_fd: int | None = None
        self.console = None

    def open(self, terminal: bool) -> None:
        """Open the FIFO and connect the console socket here, so an init in a user namespace need not reach them."""
        import socket

        self.fifo_fd = os.open(self.fifo, os.O_PATH | os.O_CLOEXEC)
        if terminal and self.console_socket:
            self.console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.console.connect(self.console_socket)
            except OSError as error:
                raise ContainerStartError(f"failed to connect to the console socket {self.console_socket}: "
                                          f"{error.strerror}", STATUS_SETUP_FAILED) from None

    def close(self) -> None:
        if self.fifo_fd is not None:
            os.close(self.fifo_fd)
            self.fifo_fd = None
        if self.console is not None:
            self.console.close()
            self.console = None


def start(spec: dict, bundle: str, *, explain: bool = False, terminal: bool = False,
          create: CreateOptions | None = None) -> tuple[int, int | None]:
    """Fork the container init and wait until it has exec'd; return its pid and the pty master.

    With `terminal`, the init opens a pty inside the container and sends its
    master here over a socket pair. Raises ContainerStartError with the
    init's message when setup fails. Creates the container's cgroup first
    when the spec names one.
    """
    trace = Tracer(explain)
    cgroup = create_cgroup(spec, trace)
    try:
        return _start(spec, bundle, trace, terminal, cgroup, create)
    except BaseException:
        if cgroup is not None:
            try:
                cgroup.remove()
            except Exception:
                pass  # the start error is the one to report
        raise


def create_cgroup(spec: dict, trace: Tracer):
    """Create the cgroup config.json names in linux.cgroupsPath, with its limits; None when it names none."""
    from minict.runtime import cgroups

    linux = spec.get("linux") or {}
    path = linux.get("cgroupsPath")
    if not path:
        return None
    try:
        cgroup = cgroups.open_cgroup(path)
        trace(f"mkdir {path} in the {cgroup.version} cgroup tree; write the limits",
              "a cgroup of its own lets minict limit, freeze, count and kill every process of the container")
        cgroup.create(linux.get("resources") or {})
    except cgroups.CgroupError as error:
        raise ContainerStartError(f"failed to set up cgroup {path}: {error}", STATUS_SETUP_FAILED) from None
    except OSError as error:
        raise ContainerStartError(f"failed to set up cgroup {path}: {error}", STATUS_SETUP_FAILED) from None
    return cgroup


def _start(spec: dict, bundle: str, trace: Tracer, terminal: bool, cgroup,
           create: CreateOptions | None) -> tuple[int, int | None]:
    import socket

    pid_namespace = _wants_new_pid_namespace(spec)
    new_user_namespace = _wants_new_user_namespace(spec)
    clone_flags = 0
    if new_user_namespace:
        # The init is cloned into the user namespace, and into the PID
        # namespace with it, so the PID namespace belongs to the user namespace.
        clone_flags = sc.CLONE_NEWUSER | (sc.CLONE_NEWPID if pid_namespace is True else 0)
        if pid_namespace is True:
            pid_namespace = False
    if pid_namespace is True:
        trace("unshare(CLONE_NEWPID)", "the next child of minict becomes PID 1 of a new PID namespace")
        sc.unshare(sc.CLONE_NEWPID)
    elif isinstance(pid_namespace, str):
        fd = os.open(pid_namespace, os.O_RDONLY | os.O_CLOEXEC)
        trace(f"setns(open({pid_namespace!r}), CLONE_NEWPID)", "join the PID namespace the spec names")
        sc.setns(fd, sc.CLONE_NEWPID)
        os.close(fd)
    score = (spec.get("process") or {}).get("oomScoreAdj")
    if score is not None:
        # Set here and inherited, since an init in a user namespace may not change its own score.
        trace(f"write /proc/self/oom_score_adj <- {score}", "process.oomScoreAdj, for the init to inherit")
        try:
            with open("/proc/self/oom_score_adj", "w") as file:
                file.write(str(int(score)))
        except (OSError, ValueError) as error:
            raise ContainerStartError(f"failed to set process.oomScoreAdj {score!r}: {error}", STATUS_SETUP_FAILED) from None
    if create is not None:
        create.open(terminal)
    # One SEQPACKET socket carries every message between the init and this
    # process, each a JSON object (and the pty master, as SCM_RIGHTS). It is
    # close-on-exec, so end of file means the init has called execve.
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = clone_into(cgroup, clone_flags, trace)
    joined = pid is not None
    if pid is None and clone_flags:
        trace(f"clone({namespace_flag_names(clone_flags)})", "create the container's first process in a new user namespace")
        pid = sc.clone_process(clone_flags)
    elif pid is None:
        trace("fork()", "create the container's first process")
        pid = os.fork()
    if pid == 0:
        parent.close()
        container_init(spec, bundle, child.detach(), terminal, trace, None if clone_flags or joined else cgroup,
                       create, user_namespace=bool(clone_flags))
        os._exit(STATUS_SETUP_FAILED)  # container_init never returns; this is a guard
    child.close()
    if create is not None:
        create.close()  # the init has its own copies now
    master = None
    try:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(parent, 65536, 1)
            except InterruptedError:
                continue
            if not data:
                return pid, master  # execve closed the init's end
            message = json.loads(data)
            kind = message.get("type")
            if kind == "userns":
                # Only now can the init be given ids: write its maps, and join it to its cgroup from out here.
                write_id_maps(pid, spec, trace)
                if cgroup is not None and not joined:
                    cgroup.join(pid)
            elif kind == "pty":
                master = fds[0]
                copy_window_size(master)
            elif kind == "hooks":
                from minict.runtime import hooks

                state = dict(create.state if create else {}, pid=pid, status="creating")
                for name in ("prestart", "createRuntime"):
                    trace(f"run the {name} hooks", "in the runtime's namespaces, before pivot_root")
                    failure = hooks.run_reporting(spec.get("hooks"), name, state)
                    if failure:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        raise ContainerStartError(failure, STATUS_SETUP_FAILED)
            elif kind == "ready":
                return pid, master  # create: the init waits on the exec FIFO for start
            else:
                os.waitpid(pid, 0)
                if master is not None:
                    os.close(master)
                raise ContainerStartError(message.get("message", "container setup failed"),
                                          int(message.get("status", STATUS_SETUP_FAILED)))
            parent.send(json.dumps({"type": "continue", "pid": pid}).encode())
    finally:
        parent.close()


def clone_into(cgroup, clone_flags: int, trace: Tracer) -> int | None:
    """Fork a child inside the cgroup v2 directory of `cgroup` with clone3, and return its pid (0 in the child).

    Returns None, with no child made, where that is not possible: no cgroup, a
    v1 cgroup, or Linux before 5.7. The caller then forks and joins, which
    waits for an RCU grace period (see sc.clone_into_cgroup).
    """
    if cgroup is None or cgroup.version != "v2":
        return None
    try:
        fd = os.open(cgroup.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # the join reports what is wrong with the cgroup
    try:
        pid = sc.clone_into_cgroup(clone_flags, fd)
    except OSError:
        return None  # an older kernel: no child was made, and fork with a join follows
    finally:
        os.close(fd)
    if pid:
        trace(f"clone3(CLONE_INTO_CGROUP|{namespace_flag_names(clone_flags)}, cgroup={cgroup.directory})",
              "create the process inside the container's cgroup, so it never has to move there")
    return pid


def _wants_new_user_namespace(spec: dict) -> bool:
    return any(n.get("type") == "user" and not n.get("path") for n in spec.get("linux", {}).get("namespaces", []))


def write_id_maps(pid: int, spec: dict, trace: Tracer) -> None:
    """Write linux.uidMappings and gidMappings into the init's uid_map and gid_map."""
    linux = spec.get("linux") or {}
    for kind in ("uid", "gid"):
        mappings = linux.get(f"{kind}Mappings") or []
        if not mappings:
            raise ContainerStartError(f"a new user namespace needs linux.{kind}Mappings in config.json",
                                      STATUS_SETUP_FAILED)
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)
        trace(f"write /proc/{pid}/{kind}_map <- {text.strip()!r}", "map ids of the user namespace to host ids")
        try:
            with open(f"/proc/{pid}/{kind}_map", "w") as file:
                file.write(text)
        except OSError as error:
            raise ContainerStartError(f"failed to write the {kind} mappings {text.strip()!r}: {error.strerror}",
                                      STATUS_SETUP_FAILED) from None


class HeldSignals:
    """Hold the signals minict forwards from before the container starts until wait() forwards them.

    Without this, a SIGTERM that arrives after the container's command has
    started but before wait() installs its handlers would end minict itself
    and leave the container running.
    """

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.previous = {signum: signal.signal(signum, self._hold) for signum in FORWARDED_SIGNALS}

    def _hold(self, signum, frame) -> None:
        self.pending.append(signum)

    def release(self) -> None:
        """Put back the handlers that were there before (on a start that failed)."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def wait(pid: int, terminal_master: int | None = None, held: HeldSignals | None = None) -> int:
    """Wait for the container, forwarding signals and the terminal; return its exit status."""
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    forwarded = FORWARDED_SIGNALS if terminal_master is not None else FORWARDED_SIGNALS + (signal.SIGWINCH,)
    previous = {signum: signal.signal(signum, forward) for signum in forwarded}
    if held is not None:
        previous.update({s: h for s, h in held.previous.items() if s in previous})
        for signum in held.pending:
            forward(signum, None)
    try:
        if terminal_master is None:
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    return exit_status(status)
                except ChildProcessError:
                    return STATUS_SETUP_FAILED
        return _copy_terminal(pid, terminal_master)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def copy_window_size(master: int) -> None:
    """Give the container's terminal the size of ours (TIOCGWINSZ on stdin, TIOCSWINSZ on the master)."""
    import fcntl
    import struct
    import termios

    classic = struct.pack("HHHH", 24, 80, 0, 0)
    try:
        size = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    except OSError:
        size = classic  # stdin is not a terminal
    if 0 in struct.unpack("HHHH", size)[:2]:
        size = classic  # a terminal without a size (script(1), a detached run): programs expect one
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def _copy_terminal(pid: int, master: int) -> int:
    import termios
    import tty

    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None

    def resize(signum=None, frame=None):
        copy_window_size(master)

    previous_winch = signal.signal(signal.SIGWINCH, resize)
    status = None
    try:
        if saved is not None:
            tty.setraw(stdin)
        stdin_open = True
        while True:
            readers = [master] + ([stdin] if stdin_open else [])
            try:
                ready, _, _ = select.select(readers, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as error:
                    if error.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    break
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    stdin_open = False
            finished, wait_status = os.waitpid(pid, os.WNOHANG)
            if finished:
                status = exit_status(wait_status)
                # Drain what the container wrote before it exited.
                while select.select([master], [], [], 0)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    os.write(stdout, data)
                break
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous_winch)
    if status is None:
        _, wait_status = os.waitpid(pid, 0)
        status = exit_status(wait_status)
    return status
