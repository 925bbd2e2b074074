"""Containers on disk: one directory per container under containers/<name>/.

    container.json   the record: name, id, image and its layers (written last)
    config.json      the OCI runtime spec the container runs from
    state.json       status, pid and its start time, exit code, times
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
import secrets
import time
import uuid

from minict.errors import AlreadyExists, FailedPrecondition, InvalidArgument, MinictError, NotFound
from minict.fsutil import atomic_write, atomic_write_json, copy_tree, file_lock, read_json, remove_tree
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
    return f"minict-{secrets.token_hex(4)}"


def container_dir(store: Store, name: str) -> str:
    validate_name(name)
    return os.path.join(store.containers, name)


def process_start_time(pid: int) -> int | None:
    """Return the start time of a process in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces; fields follow the last ")".
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def read_state(directory: str) -> dict:
    try:
        state = read_json(os.path.join(directory, "state.json"))
    except FileNotFoundError:
        return {"status": "created"}
    return state if isinstance(state, dict) else {"status": "unknown"}


def is_running(state: dict) -> bool:
    """True when the state's pid is alive and is the same process (same start time)."""
    pid = state.get("pid")
    if state.get("status") not in ("running", "paused") or not isinstance(pid, int):
        return False
    return process_start_time(pid) == state.get("pid_start_time")


def write_state(directory: str, state: dict) -> None:
    atomic_write_json(os.path.join(directory, "state.json"), state, fsync=False)


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
    directory = os.path.join(store.containers, f".creating-{name}-{secrets.token_hex(4)}")
    # The lock exists and is held before the directory appears, so a cleaner
    # that can take the lock has proof the creator is gone.
    creation_lock = os.open(directory + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    import fcntl

    fcntl.flock(creation_lock, fcntl.LOCK_EX)
    os.mkdir(directory, 0o700)
    try:
        with file_lock(store.gc_lock, shared=True):
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
            spec = generate(image_config, options, hostname, files, overlay)
            atomic_write_json(os.path.join(directory, "config.json"), spec, fsync=False)
            container = {
                "name": name,
                "id": uuid.uuid4().hex + uuid.uuid4().hex,
                "created": time.time(),
                "image": {key: record[key] for key in ("name", "digest", "index_digest", "config", "layers")},
                "snapshotter": mode,
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
        raise
    finally:
        remove_tree(directory + ".lock")
        os.close(creation_lock)
    return container


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


def start(store: Store, name: str, explain: bool = False, terminal: bool | None = None) -> int:
    """Run a created or stopped container in the foreground; return its exit status."""
    from minict.runtime import launcher

    directory, _, spec = load(store, name)
    lock = os.path.join(directory, "lock")
    with file_lock(lock):
        state = read_state(directory)
        if is_running(state):
            raise FailedPrecondition(f"container {name!r} is already running (pid {state['pid']})")
        use_terminal = bool(spec.get("process", {}).get("terminal")) if terminal is None else terminal
        try:
            pid, master = launcher.start(spec, directory, explain=explain, terminal=use_terminal)
        except launcher.ContainerStartError as error:
            write_state(directory, {"status": "stopped", "exit_code": error.exit_code, "error": str(error),
                                    "finished_at": time.time()})
            raise
        write_state(directory, {"status": "running", "pid": pid, "pid_start_time": process_start_time(pid),
                                "started_at": time.time()})
    try:
        status = launcher.wait(pid, master)
    finally:
        if master is not None:
            os.close(master)
    with file_lock(lock):
        state = read_state(directory)
        if state.get("pid") == pid:
            write_state(directory, dict(state, status="stopped", exit_code=status, finished_at=time.time()))
    return status


def remove(store: Store, name: str, force: bool = False) -> None:
    """Delete a container's directory; a running one only with force (it is killed first)."""
    import signal

    directory = container_dir(store, name)
    if not os.path.isdir(directory):
        if _remove_stale(store, name):
            return
        raise NotFound(f"no such container: {name}")
    lock = os.path.join(directory, "lock")
    with file_lock(lock):
        state = read_state(directory)
        if is_running(state):
            if not force:
                raise FailedPrecondition(f"container {name!r} is running; stop it first or use rm --force")
            os.kill(state["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while is_running(state) and time.monotonic() < deadline:
                time.sleep(0.01)
        doomed = os.path.join(store.containers, f".removing-{name}-{secrets.token_hex(4)}")
        os.rename(directory, doomed)
    remove_tree(doomed)
