"""Parsing of docker-style run flags, state transitions, log rotation and ps wording."""

from __future__ import annotations

import os

import pytest

from minict import runflags as rf
from minict.errors import InvalidArgument
from minict.inspect import human_duration
from minict.runtime.logfile import LogWriter, log_files, parse_record
from minict.spec import signal_number
from minict.state import TransitionError, read_state, transition, write_state


@pytest.mark.parametrize("text, expected", [
    ("512", 512), ("64k", 64 << 10), ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29),
    ("64MiB", 64 << 20), ("10mb", 10 << 20),
])
def test_sizes(text, expected):
    assert rf.parse_size(text, "--memory") == expected


@pytest.mark.parametrize("text", ["", "m", "12x", "-1", "1.2.3g"])
def test_bad_sizes(text):
    with pytest.raises(InvalidArgument, match="invalid --memory"):
        rf.parse_size(text, "--memory")


def test_memory_floor_and_swap_rules():
    with pytest.raises(InvalidArgument, match="minimum is 6m"):
        rf.parse_memory("4m")
    assert rf.parse_memory_swap("-1", 64 << 20) == -1
    with pytest.raises(InvalidArgument, match="at least --memory"):
        rf.parse_memory_swap("32m", 64 << 20)
    with pytest.raises(InvalidArgument, match="needs --memory"):
        rf.parse_memory_swap("1g", None)


def test_cpus_and_cpuset():
    count = len(os.sched_getaffinity(0))
    assert rf.parse_cpus("0.5") == 0.5
    with pytest.raises(InvalidArgument, match=f"this machine has {count} CPUs"):
        rf.parse_cpus(str(count + 1))
    with pytest.raises(InvalidArgument, match="use a number"):
        rf.parse_cpus("lots")
    assert rf.parse_cpuset("0") == "0"
    with pytest.raises(InvalidArgument, match="CPU 99 is not available"):
        rf.parse_cpuset("0,99")
    with pytest.raises(InvalidArgument, match="runs backwards"):
        rf.parse_cpuset("3-1")
    with pytest.raises(InvalidArgument, match="a list such as"):
        rf.parse_cpuset("a-b")


def test_ulimits():
    assert rf.parse_ulimit("nofile=1024:2048") == {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}
    assert rf.parse_ulimit("core=0") == {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    assert rf.parse_ulimit("stack=-1")["hard"] == rf.RLIM_INFINITY
    for text, message in (("nofiles=1", "NAME one of"), ("nofile=2:1", "above the hard limit"),
                          ("nofile=x", "not a number"), ("nofile=1:2:3", "SOFT\\[:HARD\\]"), ("nofile", "NAME one of")):
        with pytest.raises(InvalidArgument, match=message):
            rf.parse_ulimit(text)


def test_capabilities():
    default = ["CAP_CHOWN", "CAP_KILL"]
    assert rf.capability_set(default, ["net_admin"], ["kill"]) == ["CAP_CHOWN", "CAP_NET_ADMIN"]
    assert rf.capability_set(default, ["CAP_KILL"], ["ALL"]) == ["CAP_KILL"]
    assert "CAP_SYS_ADMIN" in rf.capability_set(default, ["all"], [])
    with pytest.raises(InvalidArgument, match="unknown capability 'FLY'"):
        rf.capability_set(default, ["FLY"], [])


def test_volume_flags():
    request = rf.parse_volume("/srv/data:/data:ro")
    assert (request.kind, request.source, request.destination, request.readonly) == ("bind", "/srv/data", "/data", True)
    request = rf.parse_volume("cache:/var/cache:nocopy")
    assert (request.kind, request.source, request.copy) == ("volume", "cache", False)
    request = rf.parse_volume("/scratch")
    assert (request.kind, request.source, request.destination) == ("volume", "", "/scratch")
    for text, message in (("data:relative", "must be absolute"), ("data:/", "cannot be '/'"),
                          ("a:/x", "not a valid volume name"), ("../x:/x", "not a valid volume name"),
                          ("/a:/b:rx", "unknown option 'rx'"), ("/a:/b:c:d", "SRC:DST"), (":/x", "SRC:DST")):
        with pytest.raises(InvalidArgument, match=message):
            rf.parse_volume(text)


def test_mount_and_tmpfs_flags(tmp_path):
    request = rf.parse_mount(f"type=bind,source={tmp_path},target=/data,readonly")
    assert (request.kind, request.source, request.readonly) == ("bind", str(tmp_path), True)
    request = rf.parse_mount("type=tmpfs,target=/run,tmpfs-size=1m,tmpfs-mode=1770")
    assert request.options == ["nosuid", "nodev", "noexec", f"size={1 << 20}", "mode=1770"]
    request = rf.parse_mount("source=vol,target=/v,volume-nocopy")
    assert (request.kind, request.source, request.copy) == ("volume", "vol", False)
    for text, message in (("type=bind,source=/nonexistent-minict,target=/x", "does not exist"),
                          ("type=bind,source=rel,target=/x", "absolute host path"),
                          ("type=nfs,target=/x", "not bind, volume or tmpfs"), ("type=tmpfs", "target= is required"),
                          ("type=tmpfs,target=/x,colour=red", "unknown field 'colour'"),
                          ("type=tmpfs,target=/x,tmpfs-mode=999", "must be octal")):
        with pytest.raises(InvalidArgument, match=message):
            rf.parse_mount(text)
    assert rf.parse_tmpfs("/run:size=64k,mode=755").options == ["nosuid", "nodev", "noexec", "size=65536", "mode=755"]
    with pytest.raises(InvalidArgument, match="unknown option 'bogus'"):
        rf.parse_tmpfs("/run:bogus")


def test_env_file(tmp_path, monkeypatch):
    path = tmp_path / "env"
    path.write_text("# comment\n\nA=1\nB=two=2\nFROM_HOST\nMISSING_ONE\n  C=3\n")
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("MISSING_ONE", raising=False)
    assert rf.parse_env_file(str(path)) == ["A=1", "B=two=2", "FROM_HOST=yes", "C=3"]
    path.write_text("BAD KEY=1\n")
    with pytest.raises(InvalidArgument, match="line 1"):
        rf.parse_env_file(str(path))
    with pytest.raises(InvalidArgument, match="failed to read --env-file"):
        rf.parse_env_file(str(tmp_path / "absent"))


def test_security_opts():
    assert rf.parse_security_opt("no-new-privileges") is True
    assert rf.parse_security_opt("no-new-privileges:true") is True
    assert rf.parse_security_opt("seccomp=unconfined") is False
    with pytest.raises(InvalidArgument, match="unsupported --security-opt"):
        rf.parse_security_opt("seccomp=/etc/profile.json")


def test_signals():
    assert signal_number("KILL") == 9
    assert signal_number("sigterm") == 15
    assert signal_number("10") == 10
    assert signal_number("SIGRTMIN+1") == 35
    for text in ("0", "99", "SIGNOPE", "", "RTMIN+40"):
        with pytest.raises(InvalidArgument, match="invalid --signal"):
            signal_number(text)


def test_state_transitions(tmp_path):
    directory = str(tmp_path)
    assert read_state(directory) == {"status": "created"}
    transition(directory, "running", pid=5)
    transition(directory, "paused")
    with pytest.raises(TransitionError, match="a paused container cannot become paused"):
        transition(directory, "paused")
    transition(directory, "running")
    assert read_state(directory)["pid"] == 5  # unpause keeps the run's fields
    transition(directory, "exited", exit_code=3)
    with pytest.raises(TransitionError):
        transition(directory, "paused")
    transition(directory, "running", pid=6)
    assert read_state(directory) == {"status": "running", "pid": 6}  # a new run starts clean
    write_state(directory, {"status": "stopped", "exit_code": 1})
    assert read_state(directory)["status"] == "exited"  # the old name still reads


def test_log_rotation_bounds_the_size(tmp_path):
    path = str(tmp_path / "container.log")
    writer = LogWriter(path, max_size=4096, max_files=3)
    for number in range(500):
        writer.write("stdout" if number % 2 else "stderr", f"line {number}\n".encode())
    writer.write("stdout", b"no newline")
    writer.close()
    files = log_files(path)
    assert files == [path + ".2", path + ".1", path]
    assert all(os.path.getsize(f) <= 4096 for f in files)
    records = [parse_record(line) for f in files for line in open(f, "rb")]
    assert records[-1][1:] == ("stdout", False, b"no newline")
    numbers = [int(r[3].split()[1]) for r in records[:-1]]
    assert numbers == list(range(numbers[0], 500))  # the newest lines, in order, none lost in between


def test_long_lines_are_split_into_partial_records(tmp_path):
    path = str(tmp_path / "container.log")
    writer = LogWriter(path)
    writer.write("stdout", b"x" * 40000 + b"\n")
    writer.close()
    records = [parse_record(line) for line in open(path, "rb")]
    assert [r[2] for r in records] == [False, False, True]
    assert b"".join(r[3] for r in records) == b"x" * 40000


@pytest.mark.parametrize("seconds, text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"), (7200, "2 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_image_env_edge_cases():
    from minict.spec import RunOptions, generate

    image = {"config": {"Env": ["A=b=c", "NOEQUALS", "=novalue", "A=second", "B="], "Cmd": ["sh"]}}
    spec = generate(image, RunOptions(), "host", {}, None)
    env = spec["process"]["env"]
    assert "A=second" in env
    assert "B=" in env
    assert not any(entry.startswith(("NOEQUALS", "=")) for entry in env)
    assert env[0].startswith("PATH=/usr/local/sbin")  # the image sets no PATH
    assert sum(entry.startswith("A=") for entry in env) == 1


def test_int_bounds_in_messages():
    with pytest.raises(InvalidArgument, match="use a number of at least 0"):
        rf.parse_int("-1", "--stop-timeout", 0)
    with pytest.raises(InvalidArgument, match="use a number from 2 to 262144"):
        rf.parse_int("1", "--cpu-shares", 2, 262144)
    with pytest.raises(InvalidArgument, match="use a whole number"):
        rf.parse_int("x", "--pids-limit", -1)
