"""Crashes and races: SIGKILL at random points, parallel pulls and creates, and minict check."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import run_minict

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root: run the suite as root")


def popen_minict(args: list[str], root: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minict", *args], env=dict(os.environ, MINICT_DIR=root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def check(root: str, *flags: str) -> subprocess.CompletedProcess:
    return run_minict(["check", *flags], root)


def test_check_repairs_a_corrupt_blob(registry, root):
    image = f"{registry.address}/alpine:3.20.3"
    assert run_minict(["pull", "-q", image], root).returncode == 0
    assert check(root).stdout.endswith("the state directory is consistent\n")
    blobs = os.path.join(root, "blobs", "sha256")
    victim = max(os.listdir(blobs), key=lambda name: os.path.getsize(os.path.join(blobs, name)))  # the layer
    with open(os.path.join(blobs, victim), "r+b") as file:
        file.write(b"garbage")
    result = check(root)
    assert result.returncode == 1
    assert f"blob sha256:{victim}" in result.stdout
    assert "is corrupt" in result.stdout
    assert "pull it again" in result.stdout
    result = check(root, "--repair")
    assert result.returncode == 0, result.stdout
    assert "repaired: " in result.stdout
    assert not os.path.exists(os.path.join(blobs, victim))
    assert check(root).returncode == 0
    assert run_minict(["pull", "-q", image], root).returncode == 0
    assert os.path.exists(os.path.join(blobs, victim))
    assert run_minict(["run", "--rm", image, "true"], root).returncode == 0


ROUNDS = int(os.environ.get("MINICT_CRASH_ROUNDS", "50"))


def test_sigkill_during_pull_leaves_a_repairable_store(registry, root):
    image = f"{registry.address}/layers:latest"
    generator = random.Random(7)
    for _ in range(ROUNDS):
        process = popen_minict(["pull", "-q", image], root)
        time.sleep(generator.uniform(0.05, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        result = check(root, "--repair")
        assert result.returncode == 0, result.stdout
        assert check(root).returncode == 0
        if generator.random() < 0.5:
            run_minict(["rmi", image], root)  # start some rounds from nothing again
    result = run_minict(["pull", "-q", image], root)
    assert result.returncode == 0, result.stderr
    assert check(root).returncode == 0
    result = run_minict(["run", "--rm", image, "cat", "/etc/os-release"], root)
    assert result.returncode == 0, result.stderr


def test_sigkill_during_run_start_and_rm(registry, root):
    image = f"{registry.address}/busybox:latest"
    assert run_minict(["pull", "-q", image], root).returncode == 0
    generator = random.Random(11)
    for round_number in range(ROUNDS):
        name = f"victim{round_number}"
        process = popen_minict(["run", "--name", name, image, "sleep", "30"], root)
        time.sleep(generator.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if os.path.exists(os.path.join(root, "containers", name)):
            starter = popen_minict(["start", name], root)  # the original foreground start, killed too
            time.sleep(generator.uniform(0.0, 0.2))
            starter.send_signal(signal.SIGKILL)
            starter.wait()
            remover = popen_minict(["rm", "-f", name], root)
            time.sleep(generator.uniform(0.0, 0.1))
            remover.send_signal(signal.SIGKILL)
            remover.wait()
        result = check(root, "--repair")
        assert result.returncode == 0, result.stdout
        run_minict(["rm", "-f", name], root)
        assert not os.path.exists(os.path.join(root, "containers", name))
        assert run_minict(["run", "--rm", "--name", name, image, "true"], root).returncode == 0
    assert check(root).returncode == 0
    assert [e for e in os.listdir(os.path.join(root, "containers")) if not e.endswith(".lock")] == []


def test_check_settles_a_dead_running_state(registry, root):
    image = f"{registry.address}/busybox:latest"
    assert run_minict(["run", "-d", "--name", "ghost", image, "sleep", "100"], root).returncode == 0
    with open(os.path.join(root, "containers", "ghost", "state.json")) as file:
        state = json.load(file)
    os.kill(state["monitor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    time.sleep(0.3)
    with open(os.path.join(root, "containers", "ghost", "state.json")) as file:
        assert json.load(file)["status"] == "running"  # nothing has looked yet
    result = check(root, "--repair")
    assert "container 'ghost' was recorded as running, but its init is gone; recorded as exited" in result.stdout
    with open(os.path.join(root, "containers", "ghost", "state.json")) as file:
        assert json.load(file)["status"] == "exited"
    assert run_minict(["rm", "ghost"], root).returncode == 0


def test_parallel_pulls_keep_one_copy(registry, root):
    image = f"{registry.address}/alpine:3.20.3"
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: run_minict(["pull", "-q", image], root), range(20)))
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    record = json.loads(run_minict(["images", "--format", "json"], root).stdout)
    assert len(record) == 1
    blobs = sorted(os.listdir(os.path.join(root, "blobs", "sha256")))
    assert len(blobs) == len(set(blobs)) == 3  # manifest, config and the one layer, each once
    assert [n for n in os.listdir(os.path.join(root, "snapshots")) if not n.startswith(".")] != []
    assert check(root).returncode == 0


def test_parallel_creates_with_one_name(registry, root):
    image = f"{registry.address}/busybox:latest"
    assert run_minict(["pull", "-q", image], root).returncode == 0
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: run_minict(["create", "--name", "same", image, "true"], root), range(10)))
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1
    assert all("the container name 'same' is already in use" in r.stderr for r in losers), [r.stderr for r in losers]
    assert json.loads(run_minict(["list-containers"], root).stdout) == ["same"]
    assert check(root).returncode == 0


def test_parallel_runs_with_distinct_names(registry, root):
    image = f"{registry.address}/busybox:latest"
    assert run_minict(["pull", "-q", image], root).returncode == 0
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: run_minict(["run", "--rm", "--name", f"p{n}", image, "echo", str(n)], root),
                                range(30)))
    assert [r.returncode for r in results] == [0] * 30, [r.stderr for r in results if r.returncode]
    assert [r.stdout for r in results] == [f"{n}\n" for n in range(30)]
    assert json.loads(run_minict(["list-containers"], root).stdout) == []


def test_layer_size_bound_stops_a_decompression_bomb(registry, root):
    # alpine's layer unpacks to about 7.8 MB, so a 1 MB bound plays the part of a bomb's gigabytes.
    image = f"{registry.address}/alpine:3.20.3"
    result = run_minict(["pull", "-q", image], root, env={"MINICT_MAX_LAYER_BYTES": str(1 << 20)})
    assert result.returncode == 1
    assert "MINICT_MAX_LAYER_BYTES" in result.stderr
    assert "sha256:" in result.stderr  # the message names the layer
    assert run_minict(["list-images"], root).stdout == "[]\n"
    assert check(root, "--repair").returncode == 0
    assert check(root).returncode == 0
    result = run_minict(["pull", "-q", image], root, env={"MINICT_MAX_LAYER_BYTES": "not-a-number"})
    assert result.returncode == 1
    assert "MINICT_MAX_LAYER_BYTES" in result.stderr
    assert run_minict(["pull", "-q", image], root).returncode == 0


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 6 MiB tmpfs of this test's own, unmounted afterwards."""
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "minict-test", str(path)], check=True)
    yield str(path)
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_full_disk_during_pull_and_container_writes(registry, root, small_tmpfs):
    full_root = os.path.join(small_tmpfs, "minict")
    image = f"{registry.address}/alpine:3.20.3"  # its blob and its unpacked layer do not both fit in 6 MiB
    result = run_minict(["pull", "-q", image], full_root)
    assert result.returncode == 1
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_minict(["list-images"], full_root).stdout == "[]\n"
    assert check(full_root, "--repair").returncode == 0
    assert check(full_root).returncode == 0
    # A container filling its own upper directory gets ENOSPC; the store stays consistent.
    small_image = f"{registry.address}/busybox:latest"
    assert run_minict(["pull", "-q", small_image], full_root).returncode == 0
    result = run_minict(["run", "--name", "filler", small_image, "sh", "-c",
                         "dd if=/dev/zero of=/big bs=1M count=20 2>&1 | grep -o 'No space left on device'; "
                         "echo still-here"], full_root)
    assert result.stdout == "No space left on device\nstill-here\n"
    # The full disk may also stop minict from recording the exit, and its error then names that.
    assert result.returncode == 0 or "recording that in" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert run_minict(["rm", "filler"], full_root).returncode == 0
    assert check(full_root).returncode == 0


def test_resume_of_a_complete_partial_blob(registry, root):
    """A pull killed after the last byte of a blob arrived, before its commit, leaves a complete partial file."""
    image = f"{registry.address}/layers:latest"
    assert run_minict(["pull", "-q", image], root).returncode == 0
    blobs = os.path.join(root, "blobs", "sha256")
    small = min(os.listdir(blobs), key=lambda name: os.path.getsize(os.path.join(blobs, name)))
    with open(os.path.join(blobs, small), "rb") as file:
        data = file.read()
    assert run_minict(["rmi", image], root).returncode == 0
    os.makedirs(os.path.join(root, "ingest"), exist_ok=True)
    with open(os.path.join(root, "ingest", f"{small}.partial"), "wb") as file:
        file.write(data)
    # Asking the registry for the bytes after the end got a 416 with a body shorter than declared.
    result = run_minict(["pull", "-q", image], root)
    assert result.returncode == 0, result.stderr
    assert check(root).returncode == 0


@pytest.mark.parametrize("command", [["rm"], ["start", "-d"], ["stop"], ["kill"], ["pause"]])
def test_commands_after_monitor_and_init_died(registry, root, command):
    """Each command settles the stale running state itself, under the lock it already holds, without hanging."""
    image = f"{registry.address}/busybox:latest"
    assert run_minict(["run", "-d", "--name", "stale", image, "sleep", "100"], root).returncode == 0
    with open(os.path.join(root, "containers", "stale", "state.json")) as file:
        state = json.load(file)
    os.kill(state["monitor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    time.sleep(0.3)
    result = run_minict([*command, "stale"], root, timeout=30)
    if command[0] in ("rm", "start", "stop"):
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1
        assert "is not running" in result.stderr
    run_minict(["rm", "-f", "stale"], root, timeout=30)


def test_hostile_image_config(registry, root, tmp_path):
    """An image whose config and files try to reach the host: symlinked WorkingDir and passwd, odd Env."""
    layout = str(tmp_path / "layout")
    bundle = str(tmp_path / "bundle")
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{registry.address}/busybox:latest",
                    f"oci:{layout}:base"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:base", bundle], check=True, stdout=subprocess.DEVNULL)
    rootfs = os.path.join(bundle, "rootfs")
    os.symlink("/", os.path.join(rootfs, "escape"))  # WorkingDir goes through this
    os.symlink("../../../../", os.path.join(rootfs, "up"))
    passwd = os.path.join(rootfs, "etc", "passwd")
    with open(passwd) as file:
        lines = file.read()
    os.unlink(passwd)
    os.makedirs(os.path.join(rootfs, "real"))
    with open(os.path.join(rootfs, "real", "passwd"), "w") as file:
        file.write(lines)
    os.symlink("/real/passwd", passwd)  # absolute: must resolve inside the container
    subprocess.run(["umoci", "repack", "--image", f"{layout}:base", bundle], check=True, stdout=subprocess.DEVNULL)
    long_value = "v" * 100_000
    # umoci refuses an Env entry without "="; tests/unit/test_runflags.py covers that case on the spec.
    subprocess.run(["umoci", "config", "--image", f"{layout}:base", "--tag", "hostile", "--clear", "config.env",
                    "--config.workingdir", "/escape/up/minict-hostile-workdir", "--config.user", "nobody",
                    "--config.env", "A=b=c", "--config.env", "A=second", "--config.env", f"LONG={long_value}"],
                   check=True, capture_output=True)
    image = f"{registry.address}/busybox:hostile"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:hostile", f"docker://{image}"],
                   check=True)
    host_path = "/minict-hostile-workdir"
    assert not os.path.exists(host_path)
    result = run_minict(["run", "--rm", image, "sh", "-c", 'pwd; id -un; echo "A=$A"; echo ${#LONG}; echo "$PATH"'],
                        root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/minict-hostile-workdir",  # created inside the container's root, not on the host
        "nobody",  # from the image's passwd, reached through its absolute symlink inside the container
        "A=second",  # a later duplicate wins
        "100000",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",  # no PATH in the image: docker's default
    ]
    assert not os.path.exists(host_path)


def test_rm_kills_processes_no_state_knows(registry, root):
    """A start killed between its fork and its state write leaves an init that only the cgroup still holds."""
    image = f"{registry.address}/busybox:latest"
    container_id = run_minict(["run", "-d", "--name", "lost", image, "sleep", "100"], root).stdout.strip()
    state_path = os.path.join(root, "containers", "lost", "state.json")
    with open(state_path) as file:
        pid = json.load(file)["pid"]
    with open(state_path, "w") as file:
        json.dump({"status": "created"}, file)  # the state a start leaves when it dies before recording
    assert run_minict(["rm", "lost"], root).returncode == 0
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    from minict.runtime.cgroups import detect

    assert not any(os.path.exists(os.path.join(m, "minict", container_id)) for m in detect()[1].values())
