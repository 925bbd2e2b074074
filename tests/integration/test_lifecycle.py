"""The docker-style lifecycle on real containers: run -d, ps, logs, exec, stop, kill, pause, wait,
inspect, volumes, cgroup limits, --init and the monitor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from minict.runtime.cgroups import detect
from tests.helpers import run_minict

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root: run the suite as root")


@pytest.fixture
def box(registry, root):
    """A state root with busybox pulled; every container left in it is removed afterwards."""
    result = run_minict(["pull", "-q", f"{registry.address}/busybox:latest"], root)
    assert result.returncode == 0, result.stderr
    yield f"{registry.address}/busybox:latest"
    names = json.loads(run_minict(["list-containers"], root).stdout)
    if names:
        run_minict(["rm", "-f", "-v", *names], root)


def ok(args: list[str], root: str, **kwargs) -> str:
    result = run_minict(args, root, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def state(root: str, name: str) -> dict:
    with open(os.path.join(root, "containers", name, "state.json")) as file:
        return json.load(file)


def ps_row(root: str, name: str, all_: bool = True) -> dict | None:
    rows = json.loads(ok(["ps", "--format", "json"] + (["-a"] if all_ else []), root))
    return next((row for row in rows if row["Name"] == name), None)


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def cgroup_dirs(container_id: str) -> list[str]:
    version, mounts = detect()
    return sorted({os.path.join(mount, "minict", container_id) for mount in mounts.values()})


def test_detached_service_ps_exec_logs_stop(box, root):
    script = "trap 'echo stopping; exit 0' TERM; echo ready; echo oops >&2; while true; do sleep 0.1; done"
    container_id = ok(["run", "-d", "--name", "svc", box, "sh", "-c", script], root).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    row = ps_row(root, "svc", all_=False)
    assert row["State"] == "running"
    assert row["Status"].startswith("Up ")
    assert row["Id"] == container_id
    assert row["Command"] == ["sh", "-c", script]
    table = ok(["ps"], root).splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]
    assert table[1].startswith(container_id[:12])
    assert table[1].endswith("svc")

    result = run_minict(["exec", "svc", "sh", "-c", "echo inside $HOSTNAME; pwd; exit 3"], root)
    assert (result.returncode, result.stdout) == (3, "inside svc\n/\n")
    result = run_minict(["exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", "svc", "sh", "-c", "echo $X $(pwd) $(id -u)"],
                        root)
    assert result.stdout == "1 /tmp 65534\n", result.stderr
    result = run_minict(["exec", "svc", "nonexistent-command"], root)
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    # The exec'd process is in the container's PID namespace and cgroup, under its root.
    pid = state(root, "svc")["pid"]
    listing = ok(["exec", "svc", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo"], root)
    assert listing == f"sh -c {script} \n"
    with open(f"/proc/{pid}/cgroup") as file:
        hierarchies = dict(line.split(":", 2)[1:] for line in file.read().splitlines())
    checked = [names for names in hierarchies
               if set(names.split(",")) & {"memory", "pids", "freezer", "devices", "cpuset", "cpu"}] or [""]
    for names in checked:  # every v1 controller, or the one v2 line
        assert hierarchies[names] == f"/minict/{container_id}", (names, hierarchies[names])

    wait_for(lambda: "ready" in ok(["logs", "svc"], root))
    result = run_minict(["logs", "svc"], root)
    assert (result.stdout, result.stderr) == ("ready\n", "oops\n")
    stamped = ok(["logs", "-t", "svc"], root)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ready\n", stamped)

    started = time.monotonic()
    assert ok(["stop", "-t", "20", "svc"], root) == "svc\n"
    assert time.monotonic() - started < 5, "stop waited although the process handled SIGTERM"
    row = ps_row(root, "svc")
    assert row["State"] == "exited"
    assert row["ExitCode"] == 0
    assert row["Status"].startswith("Exited (0) ")
    assert ps_row(root, "svc", all_=False) is None
    assert ok(["logs", "svc"], root) == "ready\nstopping\n"
    assert ok(["wait", "svc"], root) == "0\n"
    assert not any(os.path.exists(d) for d in cgroup_dirs(container_id)), "the cgroup outlived the container"
    # The original interface is unchanged.
    assert json.loads(ok(["list-containers"], root)) == ["svc"]


def test_stop_escalates_to_sigkill(box, root):
    ok(["run", "-d", "--name", "stubborn", box, "sleep", "100"], root)  # PID 1 without a handler ignores SIGTERM
    started = time.monotonic()
    ok(["stop", "-t", "1", "stubborn"], root)
    elapsed = time.monotonic() - started
    assert 1 <= elapsed < 6
    document = json.loads(ok(["inspect", "stubborn"], root))[0]
    assert document["State"]["Status"] == "exited"
    assert document["State"]["ExitCode"] == 137
    assert ok(["stop", "stubborn"], root) == "stubborn\n"  # stopping a stopped container is not an error


def test_logs_follow_and_tail(box, root):
    ok(["run", "-d", "--name", "talker", box, "sh", "-c", "for i in 1 2 3 4; do echo line $i; sleep 0.3; done"], root)
    follower = subprocess.Popen([sys.executable, "-m", "minict", "logs", "-f", "talker"], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ, MINICT_DIR=root))
    output, _ = follower.communicate(timeout=20)
    assert follower.returncode == 0
    assert output == "line 1\nline 2\nline 3\nline 4\n"
    assert ok(["logs", "--tail", "2", "talker"], root) == "line 3\nline 4\n"
    assert ok(["logs", "--tail", "0", "talker"], root) == ""
    result = run_minict(["logs", "--tail", "-1", "talker"], root)
    assert result.returncode == 1
    assert "invalid --tail" in result.stderr


def test_chatty_container_log_is_bounded(box, root):
    ok(["run", "-d", "--name", "chatty", "--log-opt", "max-size=64k", "--log-opt", "max-file=2", box,
        "sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done"], root)
    assert ok(["wait", "chatty"], root) == "0\n"
    directory = os.path.join(root, "containers", "chatty")
    logs = sorted(f for f in os.listdir(directory) if f.startswith("container.log"))
    assert logs == ["container.log", "container.log.1"]
    assert all(os.path.getsize(os.path.join(directory, f)) <= 64 * 1024 for f in logs)
    lines = ok(["logs", "chatty"], root).splitlines()
    assert lines[-1] == "line 19999"
    first = int(lines[0].split()[1])
    assert lines == [f"line {n}" for n in range(first, 20000)]


def test_run_rm_leaves_nothing(box, root):
    assert ok(["run", "--rm", "-v", "/scratch", box, "true"], root) == ""
    container_id = ok(["run", "-d", "--rm", "--name", "brief", "-v", "/scratch", box, "sleep", "0.3"], root).strip()
    wait_for(lambda: not os.path.exists(os.path.join(root, "containers", "brief")))
    assert json.loads(ok(["list-containers"], root)) == []
    assert ok(["volume", "ls", "-q"], root) == ""
    assert [e for e in os.listdir(os.path.join(root, "containers")) if not e.endswith(".lock")] == []
    assert not any(os.path.exists(d) for d in cgroup_dirs(container_id))


def test_memory_limit_ends_in_oom_kill(box, root):
    result = run_minict(["run", "--name", "greedy", "-m", "32m", box, "dd", "if=/dev/zero", "of=/dev/null",
                         "bs=100M", "count=1"], root)
    assert result.returncode == 137
    document = json.loads(ok(["inspect", "greedy"], root))[0]
    assert document["State"]["OOMKilled"] is True
    assert document["State"]["ExitCode"] == 137
    assert document["HostConfig"]["Memory"] == 32 << 20
    # The same command fits without the limit.
    assert run_minict(["run", "--rm", box, "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
                      root).returncode == 0


def test_pids_limit_stops_a_fork_bomb(box, root):
    bomb = "for i in $(seq 40); do sleep 5 & done; echo spawned"
    result = run_minict(["run", "--rm", "--pids-limit", "10", box, "sh", "-c", bomb], root)
    assert result.returncode != 0
    assert "can't fork" in result.stderr
    assert "spawned" not in result.stdout
    result = run_minict(["run", "--rm", box, "sh", "-c", bomb + "; kill $(jobs -p)"], root)
    assert result.stdout == "spawned\n", result.stderr


def test_limits_reach_the_cgroup_files(box, root):
    container_id = ok(["run", "-d", "--name", "limited", "-m", "64m", "--memory-swap", "96m", "--cpus", "0.5",
                       "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "50", box, "sleep", "100"],
                      root).strip()
    version, mounts = detect()

    def read(controller: str, name: str) -> str:
        mount = mounts["" if version == "v2" else controller]
        with open(os.path.join(mount, "minict", container_id, name)) as file:
            return file.read().strip()

    if version == "v1":
        assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
        assert read("memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
        assert (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")) == ("50000", "100000")
        assert read("cpu", "cpu.shares") == "512"
        assert read("cpuset", "cpuset.cpus") == "0"
    else:
        assert read("", "memory.max") == str(64 << 20)
        assert read("", "cpu.max") == "50000 100000"
        assert read("", "cpuset.cpus") == "0"
    assert read("pids", "pids.max") == "50"
    affinity = ok(["exec", "limited", "grep", "Cpus_allowed_list", "/proc/self/status"], root)
    assert affinity.split() == ["Cpus_allowed_list:", "0"]
    document = json.loads(ok(["inspect", "limited"], root))[0]
    assert document["HostConfig"]["NanoCpus"] == 500_000_000
    assert document["HostConfig"]["PidsLimit"] == 50
    ok(["rm", "-f", "limited"], root)
    assert not any(os.path.exists(d) for d in cgroup_dirs(container_id))


def test_named_volume_keeps_data_and_is_filled_from_the_image(box, root):
    # The image has files in /etc, so the empty volume takes a copy of them first.
    listing = ok(["run", "--rm", "-v", "conf:/etc", box, "sh", "-c", "ls /etc; echo saved > /etc/note"], root)
    assert "passwd" in listing.split()
    assert ok(["run", "--rm", "-v", "conf:/etc:ro", box, "cat", "/etc/note"], root) == "saved\n"
    result = run_minict(["run", "--rm", "-v", "conf:/etc:ro", box, "sh", "-c", "echo x > /etc/other"], root)
    assert result.returncode == 1
    assert "Read-only file system" in result.stderr
    # nocopy: an empty volume stays empty.
    assert ok(["run", "--rm", "--mount", "type=volume,source=bare,target=/etc,volume-nocopy", box, "ls", "-A", "/etc"],
              root) == ""
    records = json.loads(ok(["volume", "ls", "--format", "json"], root))
    assert sorted(r["name"] for r in records) == ["bare", "conf"]
    ok(["run", "-d", "--name", "user", "-v", "conf:/data", box, "sleep", "100"], root)
    result = run_minict(["volume", "rm", "conf"], root)
    assert result.returncode == 1
    assert "in use by container user" in result.stderr
    ok(["rm", "-f", "user"], root)
    assert ok(["volume", "rm", "conf"], root) == "conf\n"
    assert ok(["volume", "prune", "-a"], root) == "bare\nRemoved 1 volume\n"
    assert ok(["volume", "ls", "-q"], root) == ""


def test_bind_mounts_and_tmpfs(box, root, tmp_path):
    host = tmp_path / "share"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    created = tmp_path / "made-by-v"
    out = ok(["run", "--rm", "-v", f"{host}:/share", "-v", f"{created}:/made", "--mount",
              f"type=bind,source={host},target=/ro,readonly", "--tmpfs", "/scratch:size=1m,mode=1777", box, "sh", "-c",
              "cat /share/in.txt; echo back > /share/out.txt; touch /ro/x 2>&1; stat -c %a /scratch; "
              "df -k /scratch | tail -1 | awk '{print $2}'"], root)
    assert out.splitlines() == ["from host", "touch: /ro/x: Read-only file system", "1777", "1024"]
    assert (host / "out.txt").read_text() == "back\n"
    assert created.is_dir()


def test_read_only_root_allows_volumes_and_tmpfs(box, root):
    result = run_minict(["run", "--rm", "--read-only", "-v", "data:/data", "--tmpfs", "/run", box, "sh", "-c",
                         "touch /data/a && echo volume-ok; touch /run/b && echo tmpfs-ok; touch /c"], root)
    assert result.stdout == "volume-ok\ntmpfs-ok\n"
    assert "touch: /c: Read-only file system" in result.stderr
    assert result.returncode == 1


ZOMBIE_SCRIPT = "(sleep 0.1 &); exec sleep 100"
COUNT_ZOMBIES = "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"


def test_init_reaps_zombies_and_forwards_signals(box, root):
    for name, flags, zombies in (("plain", [], "1"), ("reaped", ["--init"], "0")):
        ok(["run", "-d", "--name", name, *flags, box, "sh", "-c", ZOMBIE_SCRIPT], root)
        time.sleep(0.6)
        assert ok(["exec", name, "sh", "-c", COUNT_ZOMBIES], root).strip() == zombies, name
    processes = ok(["exec", "reaped", "ps", "-o", "pid,comm"], root).split()
    assert processes[2:4] == ["1", "minict-init"]
    started = time.monotonic()
    ok(["stop", "-t", "10", "reaped"], root)  # the init passes SIGTERM to sleep, which dies of it
    assert time.monotonic() - started < 5
    assert ok(["wait", "reaped"], root) == "143\n"


def test_pause_and_unpause(box, root):
    ok(["run", "-d", "--name", "counter", box, "sh", "-c", "while true; do echo tick; sleep 0.05; done"], root)
    wait_for(lambda: ok(["logs", "counter"], root))
    ok(["pause", "counter"], root)
    assert ps_row(root, "counter")["Status"].endswith("(Paused)")
    assert json.loads(ok(["inspect", "counter"], root))[0]["State"]["Paused"] is True
    before = ok(["logs", "counter"], root)
    time.sleep(0.5)
    assert ok(["logs", "counter"], root) == before, "a paused container kept running"
    result = run_minict(["exec", "counter", "true"], root)
    assert result.returncode == 1
    assert "is paused; unpause it first" in result.stderr
    result = run_minict(["pause", "counter"], root)
    assert result.returncode == 1
    assert "already paused" in result.stderr
    ok(["unpause", "counter"], root)
    wait_for(lambda: ok(["logs", "counter"], root) != before)
    ok(["pause", "counter"], root)
    ok(["stop", "-t", "1", "counter"], root)  # a paused container still stops
    assert ps_row(root, "counter")["State"] == "exited"


def test_killed_monitor_then_ps_shows_the_truth(box, root):
    ok(["run", "-d", "--name", "orphan", box, "sleep", "100"], root)
    first = state(root, "orphan")
    os.kill(first["monitor_pid"], signal.SIGKILL)
    time.sleep(0.2)
    assert ps_row(root, "orphan")["State"] == "running"  # the container itself still runs
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: ps_row(root, "orphan")["State"] == "exited")
    assert ps_row(root, "orphan")["Status"].startswith("Exited (unknown)")
    result = run_minict(["wait", "orphan"], root)
    assert result.returncode == 1
    assert "exit status of 'orphan' is unknown" in result.stderr
    assert state(root, "orphan")["status"] == "exited"
    # It starts again normally.
    ok(["start", "-d", "orphan"], root)
    assert ps_row(root, "orphan")["State"] == "running"


def test_restart_kill_and_create(box, root):
    ok(["create", "--name", "later", box, "sh", "-c", "trap 'echo usr1' USR1; while true; do sleep 0.1; done"], root)
    assert ps_row(root, "later")["Status"] == "Created"
    ok(["start", "-d", "later"], root)
    first = state(root, "later")["pid"]
    ok(["kill", "-s", "USR1", "later"], root)
    wait_for(lambda: ok(["logs", "later"], root) == "usr1\n")
    ok(["restart", "-t", "1", "later"], root)
    assert state(root, "later")["pid"] != first
    assert ps_row(root, "later")["State"] == "running"
    assert ok(["kill", "later"], root) == "later\n"
    assert ok(["wait", "later"], root) == "137\n"
    result = run_minict(["kill", "later"], root)
    assert result.returncode == 1
    assert "is not running" in result.stderr


def test_detached_stdin(box, root):
    ok(["run", "-d", "--name", "reader", "-i", box, "cat"], root)
    ok(["run", "-d", "--name", "closed", box, "cat"], root)
    assert ok(["wait", "closed"], root) == "0\n"  # stdin is /dev/null: cat ends at once
    time.sleep(0.3)
    assert ps_row(root, "reader")["State"] == "running"  # -i: stdin stays open


def test_exec_with_a_terminal(box, root):
    ok(["run", "-d", "--name", "term", box, "sleep", "100"], root)
    output = ok(["exec", "-t", "term", "sh", "-c", "tty; echo $TERM"], root)
    assert re.fullmatch(r"/dev/pts/\d+\nxterm\n", output)  # text mode turned the terminal's \r\n into \n
    assert ok(["exec", "term", "sh", "-c", "tty || true"], root) == "not a tty\n"


def test_security_flags(box, root):
    def status_field(flags: list[str], field: str) -> str:
        out = ok(["run", "--rm", *flags, box, "grep", f"^{field}:", "/proc/self/status"], root)
        return out.split()[1]

    default = int(status_field([], "CapEff"), 16)
    assert default == 0xa80425fb  # docker's default set
    dropped = int(status_field(["--cap-drop", "chown", "--cap-add", "NET_ADMIN"], "CapEff"), 16)
    assert dropped == (default & ~(1 << 0)) | (1 << 12)
    assert int(status_field(["--cap-drop", "ALL"], "CapBnd"), 16) == 0
    assert status_field(["--security-opt", "no-new-privileges"], "NoNewPrivs") == "1"
    assert status_field([], "NoNewPrivs") == "0"
    privileged = int(status_field(["--privileged"], "CapEff"), 16)
    with open("/proc/self/status") as file:
        host = int(next(line for line in file if line.startswith("CapBnd:")).split()[1], 16)
    assert privileged == host
    out = ok(["run", "--rm", "--privileged", box, "sh", "-c", "cat /proc/kcore >/dev/null 2>&1; mount | grep ' /sys '"],
             root)
    assert "(rw," in out
    assert ok(["run", "--rm", "--ulimit", "nofile=100:200", box, "sh", "-c", "ulimit -n; ulimit -Hn"], root) == "100\n200\n"


def test_publish_is_discarded_with_a_warning(box, root):
    result = run_minict(["run", "--rm", "-p", "8080:80", box, "true"], root)
    assert result.returncode == 0
    assert "published ports are discarded (8080:80)" in result.stderr
    result = run_minict(["run", "--rm", "--network", "none", "-p", "8080:80", box, "true"], root)
    assert result.returncode == 1
    assert "has no ports to publish" in result.stderr


def test_env_file_and_env(box, root, tmp_path):
    env_file = tmp_path / "vars"
    env_file.write_text("# settings\nA=from-file\nB=x=y\n")
    out = ok(["run", "--rm", "--env-file", str(env_file), "-e", "A=from-flag", box, "sh", "-c", "echo $A $B"], root)
    assert out == "from-flag x=y\n"


@pytest.mark.parametrize("flags, message", [
    (["--memory", "1x"], "invalid --memory '1x'"),
    (["--memory", "1m"], "the minimum is 6m"),
    (["--cpus", "1000"], "invalid --cpus '1000'"),
    (["--cpuset-cpus", "0-500"], "is not available"),
    (["--pids-limit", "many"], "invalid --pids-limit 'many'"),
    (["-v", "x:/data"], "not a valid volume name"),
    (["-v", "/a:/data", "-v", "/b:/data"], "duplicate mount point /data"),
    (["--ulimit", "nofile=2:1"], "above the hard limit"),
    (["--cap-add", "FLY"], "unknown capability 'FLY'"),
    (["--stop-signal", "NOPE"], "invalid --stop-signal 'NOPE'"),
    (["--log-opt", "max-size=1"], "use at least 4k"),
    (["--security-opt", "apparmor=docker-default"], "unsupported --security-opt"),
])
def test_bad_run_flags_create_nothing(box, root, flags, message):
    result = run_minict(["run", "--name", "bad", *flags, box, "true"], root)
    assert result.returncode == 1
    assert message in result.stderr
    assert os.listdir(os.path.join(root, "containers")) == []


def test_commands_on_missing_or_stopped_containers(box, root):
    for command in (["stop", "ghost"], ["kill", "ghost"], ["logs", "ghost"], ["inspect", "ghost"], ["wait", "ghost"],
                    ["pause", "ghost"], ["exec", "ghost", "true"], ["restart", "ghost"]):
        result = run_minict(command, root)
        assert result.returncode == 1, command
        assert "no such container: ghost" in result.stderr, command
    ok(["create", "--name", "idle", box, "true"], root)
    for command, message in ((["exec", "idle", "true"], "is not running; start it first"),
                             (["pause", "idle"], "is not running"), (["unpause", "idle"], "is not running")):
        result = run_minict(command, root)
        assert result.returncode == 1
        assert message in result.stderr, command
    result = run_minict(["inspect", "-f", "{{.Nope}}", "idle"], root)
    assert result.returncode == 1
    assert "no field '.Nope'" in result.stderr
    assert ok(["inspect", "-f", "{{.State.Status}} {{.State.Running}}", "idle"], root) == "created false\n"


def test_concurrent_stop_rm_and_start_keep_state_consistent(box, root):
    for round_number in range(3):
        name = f"race{round_number}"
        ok(["run", "-d", "--name", name, box, "sleep", "100"], root)
        commands = [["stop", "-t", "1", name], ["rm", "-f", name], ["start", "-d", name], ["kill", name],
                    ["pause", name], ["restart", "-t", "1", name]]
        with ThreadPoolExecutor(len(commands)) as pool:
            results = list(pool.map(lambda c: run_minict(c, root), commands))
        for result in results:
            assert "Traceback" not in result.stderr, result.stderr
        directory = os.path.join(root, "containers", name)
        if os.path.exists(directory):
            current = state(root, name)
            assert current["status"] in ("created", "running", "paused", "exited")
            row = ps_row(root, name)
            if row["State"] in ("running", "paused"):
                assert os.path.exists(f"/proc/{current['pid']}")
            ok(["rm", "-f", name], root)
        assert not os.path.exists(directory)


def test_image_volumes_get_anonymous_volumes(box, root, registry, tmp_path):
    # Give the busybox image a Volumes entry with umoci and push it under another tag.
    layout = str(tmp_path / "layout")
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{box}", f"oci:{layout}:base"],
                   check=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:base", "--tag", "vol", "--config.volume", "/etc"],
                   check=True)
    tagged = f"{registry.address}/busybox:with-volume"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:vol", f"docker://{tagged}"],
                   check=True)
    ok(["run", "-d", "--name", "keeper", tagged, "sleep", "100"], root)
    volumes = ok(["volume", "ls", "-q"], root).split()
    assert len(volumes) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", volumes[0])
    mounts = json.loads(ok(["inspect", "keeper"], root))[0]["Mounts"]
    assert mounts == [{"Type": "volume", "Name": volumes[0], "Destination": "/etc", "RW": True,
                       "Source": os.path.join(root, "volumes", volumes[0], "_data")}]
    # The anonymous volume took a copy of the image's /etc.
    assert "root:x:0:0" in ok(["exec", "keeper", "cat", "/etc/passwd"], root)
    ok(["rm", "-f", "keeper"], root)
    assert ok(["volume", "ls", "-q"], root).split() == volumes  # rm without -v keeps it, as docker does
    assert ok(["volume", "prune"], root) == f"{volumes[0]}\nRemoved 1 volume\n"
    # A flag that mounts something at the same path replaces the anonymous volume.
    ok(["run", "--rm", "-v", "named:/etc", tagged, "true"], root)
    assert ok(["volume", "ls", "-q"], root) == "named\n"
