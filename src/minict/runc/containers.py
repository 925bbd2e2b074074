"""Containers of the runc-compatible runtime: create, start, state, kill, delete, exec, pause, update.

Each container has a directory under the runtime root (--root, default
/run/minict-runc):

    <root>/<id>/state.json    id, bundle, pid and its start time, creation time
    <root>/<id>/config.json   the bundle's config.json as it was at create
    <root>/<id>/exec.fifo     exists between create and start
    <root>/<id>/lock          flock held while the state changes

`create` runs minict's launcher with a FIFO: the container's init does all
its setup, reports ready and then blocks opening the FIFO for writing.
`create` writes the pid file and exits, so the init is left to the
caller's subreaper (conmon, containerd's shim), which waits for it. `start`
opens the FIFO for reading, which lets the init go on to execve.

The status is derived on each read: stopped when the init pid is gone (or
is another process now), created while the FIFO exists, paused after pause
and before resume (recorded in state.json), running otherwise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

from minict.errors import AlreadyExists, FailedPrecondition, InvalidArgument, MinictError, NotFound
from minict.fsutil import atomic_write, atomic_write_json, file_lock, read_json, remove_tree
from minict.runtime.cgroups import cgroup_of_spec as _cgroup_of
from minict.state import alive, process_start_time

DEFAULT_ROOT = "/run/minict-runc"
ID_RE = re.compile(r"^[\w+\-.]+$")


class Runtime:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def directory(self, container_id: str) -> str:
        if not container_id or not ID_RE.match(container_id) or container_id in (".", ".."):
            raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-' and '.'")
        return os.path.join(self.root, container_id)

    def load(self, container_id: str) -> tuple[str, dict, dict]:
        directory = self.directory(container_id)
        try:
            state = read_json(os.path.join(directory, "state.json"))
            spec = read_json(os.path.join(directory, "config.json"))
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist") from None
        return directory, state, spec

    def ids(self) -> list[str]:
        try:
            return sorted(name for name in os.listdir(self.root)
                          if os.path.exists(os.path.join(self.root, name, "state.json")))
        except FileNotFoundError:
            return []


def status_of(directory: str, state: dict, spec: dict) -> str:
    if not alive(state.get("pid"), state.get("pid_start_time")):
        return "stopped"
    if os.path.exists(os.path.join(directory, "exec.fifo")):
        return "created"
    if state.get("paused"):
        return "paused"
    return "running"


def state_document(directory: str, state: dict, spec: dict) -> dict:
    """Return the runtime-spec state of a container, as `state` prints it."""
    from minict.oci import OCI_VERSION

    status = status_of(directory, state, spec)
    return {
        "ociVersion": spec.get("ociVersion", OCI_VERSION),
        "id": state["id"],
        "pid": state["pid"] if status != "stopped" else 0,
        "status": status,
        "bundle": state["bundle"],
        "rootfs": state["rootfs"],
        "created": state["created"],
        "owner": "",
        "annotations": spec.get("annotations") or {},
    }


def _cgroups_path(spec: dict, container_id: str) -> str:
    linux = spec.setdefault("linux", {})
    path = linux.get("cgroupsPath") or f"/minict/{container_id}"
    if ":" in path and not path.startswith("/"):
        raise InvalidArgument(f"cgroupsPath {path!r} is in systemd's slice:prefix:name form; minict-runc manages "
                              "cgroupfs paths only, so drop --systemd-cgroup (podman: --cgroup-manager cgroupfs)")
    if not path.startswith("/"):
        path = "/" + path  # relative: below the root of each hierarchy
    linux["cgroupsPath"] = path
    return path


def load_bundle(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as file:
            spec = json.load(file)
    except FileNotFoundError:
        raise NotFound(f"no config.json in the bundle {bundle}: write one with minict-runc spec") from None
    except ValueError as error:
        raise InvalidArgument(f"invalid {path}: {error}") from None
    if not isinstance(spec, dict):
        raise InvalidArgument(f"invalid {path}: the top level must be a JSON object")
    if not isinstance(spec.get("process"), dict):
        raise InvalidArgument(f"invalid {path}: process is missing, so there is nothing to run")
    root = spec.get("root") or {}
    rootfs = root.get("path") if isinstance(root, dict) else None
    if not isinstance(rootfs, str) or not rootfs:
        raise InvalidArgument(f"invalid {path}: root.path is missing")
    rootfs = rootfs if os.path.isabs(rootfs) else os.path.join(bundle, rootfs)
    if not os.path.isdir(rootfs):
        raise NotFound(f"root.path {rootfs} of {path} is not a directory")
    from minict.runtime import hooks

    try:
        hooks.check(spec.get("hooks"))
    except hooks.HookError as error:
        raise InvalidArgument(str(error)) from None
    _warn_unsupported(spec)
    return spec


def _warn_unsupported(spec: dict) -> None:
    """Name the fields this host cannot apply, instead of passing them over in silence."""
    import sys

    process = spec.get("process") or {}
    linux = spec.get("linux") or {}
    notes = []
    if process.get("apparmorProfile") and not os.path.exists("/sys/kernel/security/apparmor"):
        notes.append(f"process.apparmorProfile {process['apparmorProfile']!r} is ignored: AppArmor is not enabled")
    if process.get("selinuxLabel") or linux.get("mountLabel"):
        notes.append("SELinux labels are ignored: SELinux is not enabled")
    if (linux.get("resources") or {}).get("devices"):
        from minict.runtime.cgroups import CgroupError, detect

        try:
            if detect()[0] == "v2":
                notes.append("linux.resources.devices is not applied on cgroup v2 (it needs an eBPF program)")
        except CgroupError:
            pass
    if linux.get("intelRdt"):
        notes.append("linux.intelRdt is ignored")
    for note in notes:
        print(f"minict-runc: warning: {note}", file=sys.stderr)


def create(runtime: Runtime, container_id: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None) -> int:
    """Set the container up to the point of execve and leave its init waiting for start; return its pid."""
    from minict.runtime import launcher

    directory = runtime.directory(container_id)
    bundle = os.path.abspath(bundle)
    spec = load_bundle(bundle)
    os.makedirs(runtime.root, 0o711, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise AlreadyExists(f"container with id {container_id!r} already exists") from None
    try:
        _cgroups_path(spec, container_id)
        root_path = spec["root"]["path"]
        rootfs = root_path if os.path.isabs(root_path) else os.path.join(bundle, root_path)
        spec["root"]["path"] = rootfs
        atomic_write_json(os.path.join(directory, "config.json"), spec, fsync=False)
        fifo = os.path.join(directory, "exec.fifo")
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # past the umask: an init in a user namespace is "other" here and must write it
        from minict.runtime.hooks import state_document as hook_state

        options = launcher.CreateOptions(fifo, console_socket,
                                         hook_state(container_id, "creating", 0, bundle, spec.get("annotations")))
        terminal = bool(spec["process"].get("terminal"))
        # No lock is taken here: mkdir made the directory this call's alone,
        # and a lock held now would be inherited by the init and held until start.
        pid, _ = launcher.start(spec, bundle, terminal=terminal, create=options)
        state = {"id": container_id, "pid": pid, "pid_start_time": process_start_time(pid), "bundle": bundle,
                 "rootfs": rootfs, "created": _now()}
        atomic_write_json(os.path.join(directory, "state.json"), state, fsync=False)
        if pid_file:
            atomic_write(os.path.abspath(pid_file), str(pid).encode(), fsync=False)
        return pid
    except BaseException:
        remove_tree(directory)
        raise


def _now() -> str:
    from minict.runtime.logfile import timestamp

    return timestamp()


def start(runtime: Runtime, container_id: str) -> None:
    """Let a created container's init go on to execve, then run the poststart hooks."""
    import select

    from minict.runtime import hooks

    directory, state, spec = runtime.load(container_id)
    with file_lock(os.path.join(directory, "lock")):
        status = status_of(directory, state, spec)
        if status != "created":
            raise FailedPrecondition(f"cannot start container {container_id!r}: it is {status}, not created")
        fifo = os.path.join(directory, "exec.fifo")
        # O_NONBLOCK: the open returns at once and the init's blocked open for
        # writing completes. The byte the init then writes confirms that it went on.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            deadline = time.monotonic() + 30
            while True:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if ready and os.read(fd, 1):
                    break
                if not alive(state["pid"], state["pid_start_time"]):
                    raise MinictError(f"container {container_id!r} exited before it could start")
                if time.monotonic() > deadline:
                    raise MinictError(f"timed out: container {container_id!r} did not start within 30 seconds")
        finally:
            os.close(fd)
            os.unlink(fifo)
    failure = hooks.run_reporting(spec.get("hooks"), "poststart",
                                  state_document(directory, state, spec))
    if failure:
        import sys

        print(f"minict-runc: warning: {failure}", file=sys.stderr)


def kill(runtime: Runtime, container_id: str, signum: int, everything: bool = False) -> None:
    directory, state, spec = runtime.load(container_id)
    status = status_of(directory, state, spec)
    if status == "stopped":
        raise FailedPrecondition(f"cannot kill container {container_id!r}: it is not running")
    pids = [state["pid"]]
    if everything:
        cgroup = _cgroup_of(spec)
        if cgroup is not None:
            pids = cgroup.pids() or pids
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    if status == "paused" and signum in (signal.SIGKILL, signal.SIGTERM):
        pause(runtime, container_id, False)


def delete(runtime: Runtime, container_id: str, force: bool = False) -> None:
    """Remove a stopped or created container; with force, kill a running one first."""
    from minict.runtime import hooks

    try:
        directory, state, spec = runtime.load(container_id)
    except NotFound:
        if force:
            return
        raise
    with file_lock(os.path.join(directory, "lock")):
        status = status_of(directory, state, spec)
        if status in ("running", "paused") and not force:
            raise FailedPrecondition(f"cannot delete container {container_id!r} that is not stopped: {status}; "
                                     "stop it first or use delete --force")
        cgroup = _cgroup_of(spec)
        if status != "stopped":
            try:
                os.kill(state["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            if status == "paused" and cgroup is not None:
                cgroup.freeze(False)
            deadline = time.monotonic() + 10
            while alive(state["pid"], state["pid_start_time"]) and time.monotonic() < deadline:
                time.sleep(0.01)
        if cgroup is not None:
            from minict.runtime.cgroups import CgroupError

            cgroup.kill_all()
            try:
                cgroup.remove()
            except CgroupError:
                pass
        document = state_document(directory, state, spec)
    remove_tree(directory)
    failure = hooks.run_reporting(spec.get("hooks"), "poststop", dict(document, status="stopped"))
    if failure:
        import sys

        print(f"minict-runc: warning: {failure}", file=sys.stderr)


def pause(runtime: Runtime, container_id: str, paused: bool = True) -> None:
    directory, state, spec = runtime.load(container_id)
    with file_lock(os.path.join(directory, "lock")):
        status = status_of(directory, state, spec)
        if status not in ("running", "paused"):
            raise FailedPrecondition(f"container {container_id!r} is {status}, not running")
        cgroup = _cgroup_of(spec)
        if cgroup is None:
            raise FailedPrecondition(f"container {container_id!r} has no cgroup to freeze")
        cgroup.freeze(paused)
        state["paused"] = paused
        atomic_write_json(os.path.join(directory, "state.json"), state, fsync=False)


def update(runtime: Runtime, container_id: str, resources: dict) -> None:
    directory, state, spec = runtime.load(container_id)
    cgroup = _cgroup_of(spec)
    if cgroup is None:
        raise FailedPrecondition(f"container {container_id!r} has no cgroup")
    cgroup.apply(resources)
    merged = spec.setdefault("linux", {}).setdefault("resources", {})
    for key, value in resources.items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    atomic_write_json(os.path.join(directory, "config.json"), spec, fsync=False)


def processes(runtime: Runtime, container_id: str) -> list[int]:
    directory, state, spec = runtime.load(container_id)
    cgroup = _cgroup_of(spec)
    if cgroup is None:
        return [state["pid"]] if status_of(directory, state, spec) != "stopped" else []
    return cgroup.pids()


def exec_process(runtime: Runtime, container_id: str, process: dict, *, detach: bool, pid_file: str | None,
                 console_socket: str | None) -> int:
    """Start `process` in the container; with detach return 0 once it runs, else its exit status."""
    from minict.runtime import enter, launcher
    from minict.runtime.init import USER_ANNOTATION

    directory, state, spec = runtime.load(container_id)
    status = status_of(directory, state, spec)
    if status != "running":
        raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is {status}, not running")
    annotations = {k: v for k, v in (spec.get("annotations") or {}).items() if k != USER_ANNOTATION}
    terminal = bool(process.get("terminal"))
    if terminal and detach and not console_socket:
        raise InvalidArgument("a detached exec with a terminal needs --console-socket")
    pid, master = enter.start(dict(spec, annotations=annotations), state["pid"], state["pid_start_time"], process,
                              terminal=terminal, console_path=console_socket)
    if pid_file:
        atomic_write(os.path.abspath(pid_file), str(pid).encode(), fsync=False)
    if detach:
        return 0
    try:
        return launcher.wait(pid, master)
    finally:
        if master is not None:
            os.close(master)
