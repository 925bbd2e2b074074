"""Containers on disk: one directory per container under containers/<name>/.

    container.json   the record: name, id, image and its layers (written last)
    config.json      the OCI runtime spec the container runs from
    state.json       status, pid and its start time, exit code, times (minict.state)
    lock             flock held by whoever changes state.json
    container.log    stdout and stderr of a detached run (minict.runtime.logfile)
    hostname, hosts, resolv.conf   bind-mounted into the container's /etc
    upper/, work/    the overlayfs upper and work directories (the container's writes)
    rootfs/          the mount point of the root filesystem, empty on the host

A container is built in .creating-<name>-<random>/ and renamed to its name
when complete. A killed creation leaves that directory behind; the next
create or rm of the same name removes it.
"""

from __future__ import annotations

import json
import os
import re
import time

from minict.errors import AlreadyExists, FailedPrecondition, InvalidArgument, MinictError, NotFound
from minict.fsutil import atomic_write, atomic_write_json, copy_tree, file_lock, read_json, remove_tree
from minict.runtime.cgroups import cgroup_of_spec as _cgroup_of
from minict.state import (TransitionError, alive, is_running, lock_path, process_start_time, read_state,
                          record_exit, settle, transition, write_state)
from minict.store import Store

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME_LENGTH = 128
HOSTNAME_MAX = 64
CONTAINER_RECORD = "container.json"


def validate_name(name: str) -> None:
    if not name:
        raise InvalidArgument("invalid container name '': give a name such as web")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"invalid container name {name[:20]!r}...: longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.match(name) or not name.isascii():
        raise InvalidArgument(
            f"invalid container name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )


def generate_name() -> str:
    return f"minict-{os.urandom(4).hex()}"


def container_dir(store: Store, name: str) -> str:
    validate_name(name)
    return os.path.join(store.containers, name)


def list_names(store: Store, complete_only: bool = True) -> list[str]:
    names = []
    for name in os.listdir(store.containers):
        if name.startswith("."):
            continue
        if complete_only and not os.path.exists(os.path.join(store.containers, name, CONTAINER_RECORD)):
            continue
        names.append(name)
    return sorted(names)


def _resolv_conf() -> bytes:
    """Return the host's resolv.conf, or systemd-resolved's upstream file when the host lists only a loopback stub."""
    try:
        with open("/etc/resolv.conf", "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return b""
    servers = [line.split()[1] for line in data.decode(errors="replace").splitlines()
               if line.startswith("nameserver") and len(line.split()) > 1]
    if servers and all(s.startswith("127.") or s == "::1" for s in servers):
        try:
            with open("/run/systemd/resolve/resolv.conf", "rb") as file:
                return file.read()
        except FileNotFoundError:
            pass
    return data


def create(store: Store, name: str, image_text: str, options, pull_policy: str = "missing",
           pull_function=None) -> dict:
    """Create a container from an image and return its record. Pulls the image if missing and allowed."""
    from minict.content import ContentStore
    from minict.images import find_record
    from minict.snapshots import Snapshots, choose_snapshotter
    from minict.spec import generate, validate

    validate_name(name)
    validate(options)
    if pull_policy not in ("missing", "never", "always"):
        raise InvalidArgument(f"invalid --pull {pull_policy!r}: use missing, never or always")
    record = None
    if pull_policy != "always":
        try:
            record = find_record(store, image_text)
        except NotFound:
            if pull_policy == "never":
                raise NotFound(f"image {image_text!r} is not pulled and --pull never was given; "
                               f"run minict pull {image_text} first") from None
    if record is None:
        if pull_function is None:
            raise NotFound(f"image {image_text!r} not found")
        record = pull_function(image_text)

    final = os.path.join(store.containers, name)
    _remove_stale(store, name)
    if os.path.lexists(final):
        raise _name_in_use(name)
    # Build the container in a private directory and rename it into place at
    # the end. rename(2) onto an existing, non-empty directory fails, so of
    # two creations with one name exactly one succeeds. No reader ever finds
    # a half-built container under its name.
    directory = os.path.join(store.containers, f".creating-{name}-{os.urandom(4).hex()}")
    # The lock exists and is held before the directory appears, so a cleaner
    # that can take the lock has proof the creator is gone.
    creation_lock = os.open(directory + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    import fcntl

    from minict import volumes

    fcntl.flock(creation_lock, fcntl.LOCK_EX)
    os.mkdir(directory, 0o700)
    used_volumes: list[dict] = []
    try:
        # The volume lock is held until the container's record is in place,
        # so `volume rm` either finds this container among the users or runs first.
        with file_lock(store.gc_lock, shared=True), file_lock(volumes.lock_path(store)):
            content = ContentStore(store)
            image_config = json.loads(content.read(record["config"]["digest"]))
            mode = choose_snapshotter(store)
            snapshots = Snapshots(store, mode)
            for layer in record["layers"]:
                if not snapshots.exists(layer["chain_id"]):
                    raise NotFound(f"snapshot of layer {layer['digest']} is missing; pull {image_text} again")
            hostname = options.hostname or name[:HOSTNAME_MAX - 1]
            files = {}
            for file_name, data in (
                ("hostname", f"{hostname}\n".encode()),
                ("hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n".encode()),
                ("resolv.conf", _resolv_conf()),
            ):
                atomic_write(os.path.join(directory, file_name), data, fsync=False)
                files[f"/etc/{file_name}"] = os.path.join(final, file_name)
            rootfs = os.path.join(directory, "rootfs")
            os.mkdir(rootfs, 0o755)
            overlay = None
            if mode == "overlay":
                for part in ("upper", "work"):
                    os.mkdir(os.path.join(directory, part), 0o755)
                lowers = [snapshots.fs(layer["chain_id"]) for layer in reversed(record["layers"])]
                overlay = {"lowerdir": lowers, "upperdir": os.path.join(final, "upper"),
                           "workdir": os.path.join(final, "work")}
            elif record["layers"]:
                copy_tree(snapshots.fs(record["layers"][-1]["chain_id"]), rootfs)
            container_id = os.urandom(32).hex()
            user_mounts = _resolve_mounts(store, image_config, options, used_volumes)
            spec = generate(image_config, options, hostname, files, overlay, user_mounts,
                            cgroups_path=f"/minict/{container_id}")
            atomic_write_json(os.path.join(directory, "config.json"), spec, fsync=False)
            container = {
                "name": name,
                "id": container_id,
                "created": time.time(),
                "image": {key: record[key] for key in ("name", "digest", "index_digest", "config", "layers")},
                "snapshotter": mode,
                "volumes": used_volumes,
                "log": dict(options.log_options),
            }
            write_state(directory, {"status": "created"})
            atomic_write_json(os.path.join(directory, CONTAINER_RECORD), container)
            try:
                os.rename(directory, final)
            except OSError as error:
                if os.path.lexists(final):
                    raise _name_in_use(name) from None
                raise MinictError(f"cannot create container {name!r}: {error}") from error
    except BaseException:
        remove_tree(directory)
        if used_volumes:
            volumes.remove_anonymous(store, used_volumes)
        raise
    finally:
        remove_tree(directory + ".lock")
        os.close(creation_lock)
    return container


def _resolve_mounts(store: Store, image_config: dict, options, used_volumes: list[dict]) -> list[dict]:
    """Turn -v, --mount, --tmpfs and the image's Volumes into OCI mounts; create the volumes they name.

    Appends each volume to `used_volumes`. The caller holds the volume lock.
    """
    from minict import volumes
    from minict.runflags import MountRequest
    from minict.runtime.mounts import COPY_UP_OPTION

    requests = list(options.mounts)
    taken = {request.destination for request in requests}
    # Docker gives each of the image's Volumes an anonymous volume, unless a flag mounts something there.
    for path in sorted((image_config.get("config") or {}).get("Volumes") or {}):
        normal = os.path.normpath(path) if isinstance(path, str) and path.startswith("/") else None
        if normal and normal != "/" and normal not in taken:
            requests.append(MountRequest("volume", normal))
            taken.add(normal)
    result = []
    for request in requests:
        read_only = ["ro"] if request.readonly else []
        if request.kind == "tmpfs":
            result.append({"destination": request.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": list(request.options) + read_only})
        elif request.kind == "bind":
            if not os.path.exists(request.source):
                os.makedirs(request.source, 0o755)  # -v creates a missing host directory, as docker does
            propagation = [o for o in request.options if o.endswith(("private", "shared", "slave"))] or ["rprivate"]
            result.append({"destination": request.destination, "type": "bind", "source": request.source,
                           "options": ["rbind"] + propagation + read_only})
        else:
            volume_name, _ = volumes.ensure(store, request.source or None)
            used_volumes.append({"name": volume_name, "destination": request.destination,
                                 "anonymous": not request.source})
            result.append({"destination": request.destination, "type": "bind",
                           "source": volumes.data_path(store, volume_name),
                           "options": ["rbind", "rprivate"] + read_only + ([COPY_UP_OPTION] if request.copy else [])})
    return result


def _name_in_use(name: str) -> AlreadyExists:
    return AlreadyExists(f"the container name {name!r} is already in use; remove it with minict rm --name {name}, "
                         "or choose another name")


def _remove_stale(store: Store, name: str) -> int:
    """Remove what a killed create or rm of `name` left behind; return how many directories."""
    removed = 0
    prefixes = (f".creating-{name}-", f".removing-{name}-")
    for entry in os.listdir(store.containers):
        if not entry.startswith(prefixes) or entry.endswith(".lock"):
            continue
        path = os.path.join(store.containers, entry)
        lock = path + ".lock"
        if entry.startswith(prefixes[0]):
            with file_lock(lock, blocking=False) as acquired:
                if not acquired:
                    continue  # a live create owns it
                remove_tree(path)
                remove_tree(lock)
        else:
            remove_tree(path)  # rm renames before deleting, so this is a killed rm's leftover
        removed += 1
    return removed


def load(store: Store, name: str) -> tuple[str, dict, dict]:
    """Return (directory, record, spec) of a container."""
    directory = container_dir(store, name)
    try:
        record = read_json(os.path.join(directory, CONTAINER_RECORD))
        spec = read_json(os.path.join(directory, "config.json"))
    except FileNotFoundError:
        raise NotFound(f"no such container: {name}") from None
    return directory, record, spec  # type: ignore[return-value]


def _kill_strays(spec: dict) -> None:
    """SIGKILL what is left in the container's cgroup that state.json does not know of.

    A start killed between its fork and its state write leaves an init that
    no state names, and only the cgroup still contains it.
    """
    cgroup = _cgroup_of(spec)
    if cgroup is not None:
        cgroup.kill_all()


def _release_cgroup(spec: dict) -> bool:
    """Read whether the OOM killer struck, then delete the cgroup; return the former."""
    cgroup = _cgroup_of(spec)
    return cgroup.release() if cgroup is not None else False


def start(store: Store, name: str, *, detach: bool = False, explain: bool = False, terminal: bool | None = None,
          interactive: bool = False, remove_after: bool = False) -> int:
    """Run a created or exited container; return its exit status (0 for a detached start).

    In the foreground this process is the container's monitor: it waits,
    forwards signals and records the exit. With `detach` a monitor process
    of its own does that (minict.runtime.monitor) and this returns at once.
    """
    from minict.runtime import launcher

    directory, record, spec = load(store, name)
    use_terminal = bool(spec.get("process", {}).get("terminal")) if terminal is None else terminal
    held = None if detach else launcher.HeldSignals()
    try:
        report = _start_locked(store, directory, name, spec, record, detach, explain, use_terminal, interactive,
                               remove_after)
    except BaseException:
        if held is not None:
            held.release()
        raise
    if detach:
        return 0
    pid, master = report["pid"], report.pop("master")
    try:
        status = launcher.wait(pid, master, held)
    finally:
        if master is not None:
            os.close(master)
    oom_killed = _release_cgroup(spec)
    try:
        record_exit(directory, pid, status, oom_killed)
    except OSError as error:
        raise MinictError(f"container {name!r} exited with status {status}, but recording that in "
                          f"{directory}/state.json failed: {error.strerror}") from None
    return status


def _start_locked(store: Store, directory: str, name: str, spec: dict, record: dict, detach: bool, explain: bool,
                  use_terminal: bool, interactive: bool, remove_after: bool) -> dict:
    """Start the container under its lock and record it as running; return the pids (and pty master)."""
    from minict.runtime import launcher

    master = None
    with file_lock(lock_path(directory)):
        state = settle(directory, read_state(directory), locked=True)
        if is_running(state):
            raise FailedPrecondition(f"container {name!r} is already running (pid {state['pid']})")
        _release_cgroup(spec)  # what a killed earlier run may have left
        try:
            if detach:
                report = _spawn_monitor(store, directory, name, spec, record, use_terminal, interactive,
                                        remove_after, explain)
            else:
                pid, master = launcher.start(spec, directory, explain=explain, terminal=use_terminal)
                report = {"pid": pid, "pid_start_time": process_start_time(pid), "monitor_pid": os.getpid(),
                          "monitor_start_time": process_start_time(os.getpid())}
        except launcher.ContainerStartError as error:
            write_state(directory, {"status": "exited", "exit_code": error.exit_code, "error": str(error),
                                    "finished_at": time.time()})
            raise
        transition(directory, "running", started_at=time.time(), detached=detach, **report)
    return dict(report, master=master)


def _spawn_monitor(store: Store, directory: str, name: str, spec: dict, record: dict, terminal: bool,
                   interactive: bool, remove_after: bool, explain: bool) -> dict:
    """Start the container under a monitor process of its own; return the pids of both."""
    import sys

    from minict.runtime import launcher

    ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first == 0:
        os.close(ready_read)
        try:
            # A new session with no terminal, and a second fork, so the
            # monitor is nobody's child here and no terminal signal reaches it.
            os.setsid()
            if os.fork():
                os._exit(0)
            _become_monitor(store, directory, name, spec, record, terminal, interactive, remove_after, explain,
                            ready_write)
        except BaseException as error:  # report anything to the parent rather than die silently
            report = {"error": str(error) or error.__class__.__name__, "status": getattr(error, "exit_code", 125)}
            try:
                os.write(ready_write, json.dumps(report).encode())
            finally:
                os._exit(1)
    os.close(ready_write)
    os.waitpid(first, 0)
    chunks = []
    while True:
        chunk = os.read(ready_read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(ready_read)
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        report = {"error": "the container's monitor died before the container started", "status": 125}
    if "error" in report:
        raise launcher.ContainerStartError(report["error"], int(report.get("status", 125)))
    return report


def _become_monitor(store: Store, directory: str, name: str, spec: dict, record: dict, terminal: bool,
                    interactive: bool, remove_after: bool, explain: bool, ready_write: int) -> None:
    """In the monitor-to-be: wire the container's stdio, start it, then exec the small monitor program."""
    import signal
    import sys

    import minict
    from minict.runtime import launcher
    from minict.runtime.logfile import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE

    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    held = []
    if interactive:
        # -d -i: stdin stays open (never EOF) for as long as the monitor lives.
        stdin_read, stdin_write = os.pipe()
        os.dup2(stdin_read, 0)
        os.close(stdin_read)
        held.append(stdin_write)
    else:
        os.dup2(devnull, 0)
    fds = {}
    if not terminal:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        os.dup2(out_write, 1)
        os.dup2(err_write, 2)
        os.close(out_write)
        os.close(err_write)
        fds = {out_read: "stdout", err_read: "stderr"}
    else:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    pid, master = launcher.start(spec, directory, explain=explain, terminal=terminal)
    if master is not None:
        fds = {master: "stdout"}
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    for fd in list(fds) + held:
        os.set_inheritable(fd, True)
    log = record.get("log") or {}
    settings = {
        "pid": pid, "directory": directory, "log": os.path.join(directory, "container.log"),
        "max_size": log.get("max_size", DEFAULT_MAX_SIZE), "max_files": log.get("max_files", DEFAULT_MAX_FILES),
        "fds": {str(fd): stream for fd, stream in fds.items()},
        "cgroup": (spec.get("linux") or {}).get("cgroupsPath"),
        "remove": {"root": store.root, "name": name} if remove_after else None,
    }
    report = {"pid": pid, "pid_start_time": process_start_time(pid), "monitor_pid": os.getpid(),
              "monitor_start_time": process_start_time(os.getpid())}
    os.write(ready_write, json.dumps(report).encode())
    os.close(ready_write)
    program = os.path.join(os.path.dirname(launcher.__file__), "monitor.py")
    package_root = os.path.dirname(os.path.dirname(minict.__file__))
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", program, package_root, json.dumps(settings)])
    finally:
        os.kill(pid, signal.SIGKILL)  # no monitor, no container
        os._exit(1)


def _stop_signal(spec: dict) -> int:
    from minict.spec import STOP_SIGNAL_ANNOTATION, signal_number

    text = (spec.get("annotations") or {}).get(STOP_SIGNAL_ANNOTATION)
    if text:
        try:
            return signal_number(text)
        except InvalidArgument:
            pass
    return 15


def _signal(directory: str, spec: dict, state: dict, signum: int) -> None:
    """Send `signum` to the init; a paused container is thawed, or it could not act on it."""
    try:
        os.kill(state["pid"], signum)
    except ProcessLookupError:
        return
    if state.get("status") == "paused" and signum in (9, 15, 2, 3, 1):
        cgroup = _cgroup_of(spec)
        if cgroup is not None:
            cgroup.freeze(False)
        transition(directory, "running")


def _wait_gone(state: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(state):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _wait_recorded(directory: str, pid: int, timeout: float = 5.0) -> dict:
    """Wait until the exit of `pid` is in state.json (the monitor writes it), then return the state."""
    deadline = time.monotonic() + timeout
    while True:
        state = settle(directory, read_state(directory))
        if state.get("pid") != pid or state.get("status") not in ("running", "paused"):
            if state.get("status") == "exited" and state.get("exit_code") is None and \
                    alive(state.get("monitor_pid"), state.get("monitor_start_time")) and time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            return state
        if time.monotonic() >= deadline:
            return state
        time.sleep(0.01)


def stop(store: Store, name: str, timeout: float | None = None) -> None:
    """Send the stop signal (SIGTERM or the image's), then SIGKILL after `timeout` seconds (default 10)."""
    from minict.spec import STOP_TIMEOUT_ANNOTATION

    directory, _, spec = load(store, name)
    if timeout is None:
        timeout = float((spec.get("annotations") or {}).get(STOP_TIMEOUT_ANNOTATION, 10))
    with file_lock(lock_path(directory)):
        state = settle(directory, read_state(directory), locked=True)
        if not is_running(state):
            return
        _signal(directory, spec, state, _stop_signal(spec))
    if not _wait_gone(state, timeout):
        with file_lock(lock_path(directory)):
            current = read_state(directory)
            if is_running(current):
                _signal(directory, spec, current, 9)
        _wait_gone(state, 10)
    _wait_recorded(directory, state["pid"])


def kill(store: Store, name: str, signum: int = 9) -> None:
    directory, _, spec = load(store, name)
    with file_lock(lock_path(directory)):
        state = settle(directory, read_state(directory), locked=True)
        if not is_running(state):
            raise FailedPrecondition(f"container {name!r} is not running")
        _signal(directory, spec, state, signum)
    if signum == 9:
        _wait_gone(state, 10)
        _wait_recorded(directory, state["pid"])


def pause(store: Store, name: str, paused: bool = True) -> None:
    """Freeze every process of the container (freezer cgroup), or thaw them."""
    from minict.runtime.cgroups import CgroupError

    directory, _, spec = load(store, name)
    with file_lock(lock_path(directory)):
        state = settle(directory, read_state(directory), locked=True)
        if not is_running(state):
            raise FailedPrecondition(f"container {name!r} is not running")
        if state["status"] == ("paused" if paused else "running"):
            raise FailedPrecondition(f"container {name!r} is {'already' if paused else 'not'} paused")
        cgroup = _cgroup_of(spec)
        if cgroup is None:
            raise FailedPrecondition(f"container {name!r} has no cgroup, so it cannot be paused; it was created "
                                     "by an older minict: create it again")
        try:
            cgroup.freeze(paused)
        except CgroupError as error:
            raise MinictError(f"failed to {'pause' if paused else 'unpause'} {name!r}: {error}") from None
        transition(directory, "paused" if paused else "running")


def wait(store: Store, name: str) -> int | None:
    """Block until the container has run and exited; return its exit status (None when unknown).

    As in docker, a created container that never started is waited for too.
    """
    directory, _, _ = load(store, name)
    while True:
        if not os.path.exists(os.path.join(directory, CONTAINER_RECORD)):
            raise NotFound(f"container {name!r} was removed before its exit status could be read")
        state = settle(directory, read_state(directory))
        if state.get("status") in ("created", "running", "paused"):
            time.sleep(0.05)
            continue
        if state.get("status") == "exited" and state.get("pid"):
            state = _wait_recorded(directory, state["pid"])
        return state.get("exit_code")


def remove(store: Store, name: str, force: bool = False, volumes: bool = False) -> None:
    """Delete a container's directory; a running one only with force (it is killed first).

    With `volumes`, its anonymous volumes go too.
    """
    directory = container_dir(store, name)
    if not os.path.isdir(directory):
        if _remove_stale(store, name):
            return
        raise NotFound(f"no such container: {name}")
    try:
        _, record, spec = load(store, name)
    except NotFound:
        record, spec = {}, {}
    with file_lock(lock_path(directory)):
        # No settle here: rm needs only the truth from /proc, and must work on a full disk too.
        state = read_state(directory)
        if is_running(state):
            if not force:
                raise FailedPrecondition(f"container {name!r} is running; stop it first or use rm --force")
            _signal(directory, spec, state, 9)
            _wait_gone(state, 10)
        _kill_strays(spec)
        _release_cgroup(spec)
        doomed = os.path.join(store.containers, f".removing-{name}-{os.urandom(4).hex()}")
        os.rename(directory, doomed)
    remove_tree(doomed)
    if volumes and record.get("volumes"):
        from minict.volumes import remove_anonymous

        remove_anonymous(store, record["volumes"])


def exec_in(store: Store, name: str, args: list[str], *, env: list[str], user: str | None = None,
            workdir: str | None = None, terminal: bool = False, interactive: bool = False,
            privileged: bool = False, explain: bool = False) -> int:
    """Run `args` inside the running container `name`; return the command's exit status."""
    from minict.linux.capabilities import available
    from minict.runtime import enter, launcher
    from minict.runtime.init import USER_ANNOTATION
    from minict.spec import merge_env

    directory, _, spec = load(store, name)
    state = settle(directory, read_state(directory))
    if not is_running(state):
        raise FailedPrecondition(f"container {name!r} is not running; start it first (minict start -d {name})")
    if state["status"] == "paused":
        raise FailedPrecondition(f"container {name!r} is paused; unpause it first")
    process = dict(spec.get("process") or {})
    extra = ["TERM=xterm"] if terminal else []
    process.update(args=list(args), terminal=terminal, env=merge_env(process.get("env") or [], extra, env))
    if workdir is not None:
        process["cwd"] = workdir
    annotations = dict(spec.get("annotations") or {})
    if user is not None:
        annotations[USER_ANNOTATION] = user
        process["user"] = {"uid": 0, "gid": 0}
    if privileged:
        everything = available()
        process["capabilities"] = {"bounding": everything, "effective": everything, "permitted": everything}
    if not interactive:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    held = launcher.HeldSignals()
    try:
        pid, master = enter.start(dict(spec, annotations=annotations), state["pid"], state["pid_start_time"],
                                  process, terminal=terminal, explain=explain)
    except BaseException:
        held.release()
        raise
    try:
        return launcher.wait(pid, master, held)
    finally:
        if master is not None:
            os.close(master)
