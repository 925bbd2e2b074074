"""Container views for ps, inspect and logs: summaries, inspect documents and the log reader."""

from __future__ import annotations

import json
import os
import sys
import time

from minict.containers import CONTAINER_RECORD, container_dir, list_names, load
from minict.errors import InvalidArgument, NotFound
from minict.fsutil import read_json
from minict.state import is_running, read_state, settle
from minict.store import Store


def human_duration(seconds: float) -> str:
    """Return docker's wording for a span of time: "Less than a second", "About a minute", "3 hours", ..."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        whole = int(seconds)
        return "1 second" if whole == 1 else f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(state: dict, now: float) -> str:
    status = state.get("status", "created")
    if status == "created":
        return "Created"
    if status in ("running", "paused"):
        text = "Up " + human_duration(now - state.get("started_at", now))
        return text + " (Paused)" if status == "paused" else text
    code = state.get("exit_code")
    finished = state.get("finished_at")
    when = f" {human_duration(now - finished)} ago" if finished else ""
    return f"Exited ({'unknown' if code is None else code}){when}"


def _image_name(record: dict) -> str:
    from minict.reference import parse_reference

    name = record.get("image", {}).get("name", "")
    try:
        return parse_reference(name).familiar()
    except Exception:
        return name


def summaries(store: Store) -> list[dict]:
    """Return one dict per container, newest first, with the true status (pids checked in /proc)."""
    now = time.time()
    rows = []
    for name in list_names(store):
        directory = os.path.join(store.containers, name)
        try:
            record = read_json(os.path.join(directory, CONTAINER_RECORD))
            spec = read_json(os.path.join(directory, "config.json"))
        except (FileNotFoundError, ValueError):
            continue  # removed after the listing
        state = settle(directory, read_state(directory))
        if state.get("status") in ("running", "paused") and not is_running(state):
            state = dict(state, status="exited")
        rows.append({
            "Id": record["id"],
            "Name": name,
            "Image": _image_name(record),
            "Command": (spec.get("process") or {}).get("args") or [],
            "Created": record.get("created", 0),
            "State": state.get("status", "created"),
            "Status": status_text(state, now),
            "ExitCode": state.get("exit_code"),
            "Pid": state.get("pid") if state.get("status") in ("running", "paused") else None,
        })
    rows.sort(key=lambda row: row["Created"], reverse=True)
    return rows


def _time(value: float | None) -> str:
    if not value:
        return "0001-01-01T00:00:00Z"
    from minict.runtime.logfile import timestamp

    return timestamp(int(value * 1_000_000_000))


def describe(store: Store, name: str) -> dict:
    """Build the inspect document of a container, with docker's field names."""
    directory, record, spec = load(store, name)
    state = settle(directory, read_state(directory))
    running = is_running(state)
    status = state.get("status", "created")
    process = spec.get("process") or {}
    annotations = spec.get("annotations") or {}
    linux = spec.get("linux") or {}
    resources = linux.get("resources") or {}
    from minict.runtime.init import INIT_ANNOTATION, USER_ANNOTATION

    volume_names = {v["destination"]: v["name"] for v in record.get("volumes", [])}
    mounts = []
    for mount in spec.get("mounts") or []:
        destination = mount["destination"]
        if destination in volume_names:
            mounts.append({"Type": "volume", "Name": volume_names[destination], "Source": mount["source"],
                           "Destination": destination, "RW": "ro" not in mount.get("options", [])})
        elif mount.get("type") == "bind" and not mount["source"].startswith(directory + os.sep):
            mounts.append({"Type": "bind", "Source": mount["source"], "Destination": destination,
                           "RW": "ro" not in mount.get("options", [])})
        elif mount.get("type") == "tmpfs" and destination not in ("/dev", "/dev/shm"):
            mounts.append({"Type": "tmpfs", "Source": "", "Destination": destination,
                           "RW": "ro" not in mount.get("options", [])})
    memory = resources.get("memory") or {}
    cpu = resources.get("cpu") or {}
    args = process.get("args") or []
    return {
        "Id": record["id"],
        "Name": name,
        "Created": _time(record.get("created")),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": "exited" if status in ("running", "paused") and not running else status,
            "Running": running,
            "Paused": running and status == "paused",
            "OOMKilled": bool(state.get("oom_killed")),
            "Pid": state.get("pid", 0) if running else 0,
            "ExitCode": state.get("exit_code") if state.get("exit_code") is not None else 0,
            "Error": state.get("error", ""),
            "StartedAt": _time(state.get("started_at")),
            "FinishedAt": _time(state.get("finished_at")),
            "MonitorPid": state.get("monitor_pid", 0) if running else 0,
        },
        "Image": record["image"]["config"]["digest"],
        "ImageName": _image_name(record),
        "LogPath": os.path.join(directory, "container.log"),
        "Config": {
            "Hostname": spec.get("hostname", ""),
            "User": annotations.get(USER_ANNOTATION, ""),
            "Env": process.get("env") or [],
            "Cmd": args,
            "WorkingDir": process.get("cwd", "/"),
            "Tty": bool(process.get("terminal")),
            "Image": _image_name(record),
        },
        "HostConfig": {
            "Memory": memory.get("limit", 0),
            "MemorySwap": memory.get("swap", 0),
            "NanoCpus": int(cpu["quota"] * 1e9 / cpu["period"]) if cpu.get("quota") and cpu.get("period") else 0,
            "CpuShares": cpu.get("shares", 0),
            "CpusetCpus": cpu.get("cpus", ""),
            "PidsLimit": (resources.get("pids") or {}).get("limit"),
            "ReadonlyRootfs": bool((spec.get("root") or {}).get("readonly")),
            "Init": annotations.get(INIT_ANNOTATION) == "true",
            "CapAdd": None,
            "Capabilities": (process.get("capabilities") or {}).get("bounding", []),
            "NoNewPrivileges": bool(process.get("noNewPrivileges")),
            "Ulimits": process.get("rlimits") or [],
            "NetworkMode": "none" if any(n.get("type") == "network" for n in linux.get("namespaces", [])) else "host",
            "CgroupsPath": linux.get("cgroupsPath", ""),
        },
        "Mounts": mounts,
    }


def render_template(template: str, document: dict) -> str:
    """Render a small part of Go templates: '{{.A.B}}' and '{{json .A}}', with text around them."""
    import re

    def field(path: str):
        value = document
        for part in filter(None, path.split(".")):
            if not isinstance(value, dict) or part not in value:
                raise InvalidArgument(f"invalid --format {template!r}: the document has no field {path!r}")
            value = value[part]
        return value

    def substitute(match) -> str:
        expression = match.group(1).strip()
        if expression.startswith("json "):
            return json.dumps(field(expression[5:].strip()))
        if not expression.startswith("."):
            raise InvalidArgument(f"invalid --format {template!r}: use {{{{.Field.Subfield}}}} or {{{{json .Field}}}}")
        value = field(expression)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return "" if value is None else str(value)

    return re.sub(r"\{\{(.*?)\}\}", substitute, template)


def print_logs(store: Store, name: str, follow: bool = False, tail: int | None = None,
               timestamps: bool = False) -> int:
    """Print the container's log, stdout records to stdout and stderr records to stderr."""
    from minict.runtime.logfile import log_files, parse_record

    directory = container_dir(store, name)
    if not os.path.exists(os.path.join(directory, CONTAINER_RECORD)):
        raise NotFound(f"no such container: {name}")
    path = os.path.join(directory, "container.log")
    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    at_line_start = {"stdout": True, "stderr": True}

    def emit(line: bytes) -> None:
        record = parse_record(line)
        if record is None:
            return
        stamp, stream, full, content = record
        out = outputs.get(stream, sys.stdout.buffer)
        if timestamps and at_line_start.get(stream, True):
            out.write(stamp.encode() + b" ")
        out.write(content + (b"\n" if full else b""))
        at_line_start[stream] = full
        out.flush()

    lines: list[bytes] = []
    for file_path in log_files(path):
        with open(file_path, "rb") as file:
            lines.extend(file.readlines())
    if tail is not None:
        # Count lines, not records: a line split into P parts ends at its F record.
        kept = 0
        index = len(lines)
        while index > 0 and kept < tail:
            index -= 1
            record = parse_record(lines[index])
            if record and record[2]:
                kept += 1
        while index > 0:
            record = parse_record(lines[index - 1])
            if record and not record[2]:
                index -= 1
            else:
                break
        lines = lines[index:] if tail else []
    for line in lines:
        emit(line)
    if not follow:
        return 0
    return _follow(directory, path, emit)


def _follow(directory: str, path: str, emit) -> int:
    """Print what the monitor appends, across rotations, until the container has exited."""
    try:
        file = open(path, "rb")
        file.seek(0, os.SEEK_END)
    except FileNotFoundError:
        file = None
    partial = b""
    while True:
        state = settle(directory, read_state(directory))
        done = state.get("status") not in ("running", "paused")
        progressed = False
        if file is not None:
            chunk = file.read()
            if chunk:
                progressed = True
                data = partial + chunk
                *complete, partial = data.split(b"\n")
                for line in complete:
                    emit(line + b"\n")
            try:
                rotated = os.stat(path).st_ino != os.fstat(file.fileno()).st_ino
            except FileNotFoundError:
                rotated = False
            if rotated and not chunk:
                file.close()
                file = open(path, "rb")
                continue
        elif os.path.exists(path):
            file = open(path, "rb")
            continue
        if done and not progressed:
            if file is not None:
                file.close()
            return 0
        if not progressed:
            time.sleep(0.1)
