"""A container's state.json: its status and the allowed moves between statuses.

    created --start--> running --pause--> paused --unpause--> running
    running or paused --the init exits--> exited --start--> running

Writers hold the container's lock (containers/<name>/lock) and go through
`transition`, which refuses any other move, so a concurrent stop, rm and
start cannot leave a state that no sequence of commands produces. The file
is replaced atomically, so readers never take the lock.

A pid alone cannot prove a container runs: the kernel reuses pids. The
state keeps the start time of the pid from /proc as well, and a container
counts as running only while both match. The same holds for the monitor
that waits for it.
"""

from __future__ import annotations

import os
import time

from minict.fsutil import atomic_write_json, file_lock, read_json

TRANSITIONS = {
    "created": {"running", "exited"},
    "running": {"paused", "exited"},
    "paused": {"running", "exited"},
    "exited": {"running"},
}


class TransitionError(Exception):
    def __init__(self, current: str, wanted: str):
        super().__init__(f"a {current} container cannot become {wanted}")
        self.current = current
        self.wanted = wanted


def process_start_time(pid: int) -> int | None:
    """Return the start time of a process in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces; fields follow the last ")".
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: object, start_time: object) -> bool:
    return isinstance(pid, int) and pid > 0 and process_start_time(pid) == start_time


def read_state(directory: str) -> dict:
    try:
        state = read_json(os.path.join(directory, "state.json"))
    except FileNotFoundError:
        return {"status": "created"}
    if not isinstance(state, dict):
        return {"status": "created"}
    if state.get("status") == "stopped":  # the name minict 0.1 used
        state["status"] = "exited"
    return state


def write_state(directory: str, state: dict) -> None:
    atomic_write_json(os.path.join(directory, "state.json"), state, fsync=False)


def is_running(state: dict) -> bool:
    """True when the state's pid is alive and is the same process (same start time)."""
    return state.get("status") in ("running", "paused") and alive(state.get("pid"), state.get("pid_start_time"))


def transition(directory: str, wanted: str, **fields) -> dict:
    """Move the state to `wanted` with `fields` and return the new state. The caller must hold the lock."""
    state = read_state(directory)
    current = state.get("status", "created")
    if wanted not in TRANSITIONS.get(current, set()):
        raise TransitionError(current, wanted)
    if wanted == "running" and current != "paused":
        state = {}  # a new run: nothing of the last one applies
    state.update(fields, status=wanted)
    write_state(directory, state)
    return state


def lock_path(directory: str) -> str:
    return os.path.join(directory, "lock")


def record_exit(directory: str, pid: int, exit_code: int | None, oom_killed: bool = False, error: str = "",
                locked: bool = False) -> bool:
    """Record that the container init `pid` ended; False if the state has moved on to another pid.

    Pass `locked` when the caller holds the container's lock already: a
    second flock of the same file from this process would wait for itself.
    """
    if not locked:
        with file_lock(lock_path(directory)):
            return record_exit(directory, pid, exit_code, oom_killed, error, locked=True)
    state = read_state(directory)
    if state.get("pid") != pid or state.get("status") not in ("running", "paused"):
        return False
    fields = {"exit_code": exit_code, "finished_at": time.time(), "oom_killed": oom_killed}
    if error:
        fields["error"] = error
    transition(directory, "exited", **fields)
    return True


def settle(directory: str, state: dict, locked: bool = False) -> dict:
    """Return the true state: a running state whose init and monitor are both gone is recorded as exited.

    That happens when the monitor was killed (kill -9): nothing is left to
    report the exit status, so it is unknown (None).
    """
    if state.get("status") not in ("running", "paused") or is_running(state):
        return state
    if alive(state.get("monitor_pid"), state.get("monitor_start_time")):
        return dict(state, status="exited", exit_code=None)  # the monitor is writing the exit status now
    record_exit(directory, state.get("pid"), None,
                error="the container's monitor died, so its exit status is unknown", locked=locked)
    return read_state(directory)
