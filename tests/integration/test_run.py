"""minict run, start, rm and list-containers: real containers from the testbed images."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import run_minict

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root: run the suite as root")


def mountinfo() -> list[str]:
    with open("/proc/self/mountinfo") as file:
        return sorted(" ".join(line.split()[3:5]) for line in file)


@pytest.fixture
def pulled(registry, root):
    """A state root with busybox, alpine and layers pulled."""
    for tag in ("busybox:latest", "alpine:3.20.3", "layers:latest"):
        result = run_minict(["pull", "-q", f"{registry.address}/{tag}"], root)
        assert result.returncode == 0, result.stderr
    return root


def image(registry, tag: str) -> str:
    return f"{registry.address}/{tag}"


def test_run_echo_busybox_and_alpine(registry, pulled):
    for tag in ("busybox:latest", "alpine:3.20.3"):
        result = run_minict(["run", "--image", image(registry, tag), "--name", tag.split(":")[0], "--", "echo", "hello"],
                            pulled)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "hello\n"
    assert json.loads(run_minict(["list-containers"], pulled).stdout) == ["alpine", "busybox"]


def test_run_exit_status_propagated(registry, pulled):
    result = run_minict(["run", "--rm", image(registry, "busybox:latest"), "sh", "-c", "exit 3"], pulled)
    assert result.returncode == 3
    result = run_minict(["run", "--rm", image(registry, "busybox:latest"), "sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?'],
                        pulled)
    assert result.returncode == 137


def test_run_killed_from_host_reports_signal(registry, pulled):
    env = dict(os.environ, MINICT_DIR=pulled)
    process = subprocess.Popen([sys.executable, "-m", "minict", "run", "--name", "sleeper",
                                image(registry, "busybox:latest"), "sleep", "60"], env=env)
    state_path = os.path.join(pulled, "containers", "sleeper", "state.json")
    deadline = time.monotonic() + 20
    pid = None
    while time.monotonic() < deadline and pid is None:
        try:
            with open(state_path) as file:
                pid = json.load(file).get("pid")
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    assert pid, "the container never started"
    os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=20) == 137


def test_run_signal_forwarded(registry, pulled):
    env = dict(os.environ, MINICT_DIR=pulled)
    script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    process = subprocess.Popen([sys.executable, "-m", "minict", "run", "--rm", image(registry, "busybox:latest"),
                                "sh", "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 7
    assert process.stdout.read() == "got TERM\n"


def test_run_hostname_and_pid_one(registry, pulled):
    result = run_minict(["run", "--name", "box1", image(registry, "busybox:latest"), "sh", "-c",
                         "hostname; cat /etc/hostname; ps -o pid,comm; true"], pulled)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "box1"
    assert lines[1] == "box1"
    assert lines[2].split() == ["PID", "COMMAND"]
    assert lines[3].split() == ["1", "sh"]
    assert lines[4].split()[1] == "ps"
    assert len(lines) == 5
    result = run_minict(["run", "--rm", "--hostname", "other", image(registry, "busybox:latest"), "hostname"], pulled)
    assert result.stdout == "other\n"


def test_run_alpine_os_release(registry, pulled):
    result = run_minict(["run", "--rm", image(registry, "alpine:3.20.3"), "cat", "/etc/os-release"], pulled)
    assert result.returncode == 0
    assert 'PRETTY_NAME="Alpine Linux v3.20"' in result.stdout


def test_run_layers_default_command(registry, pulled):
    result = run_minict(["run", "--rm", "--image", image(registry, "layers:latest")], pulled)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from /home/app as app\n"


def test_start_keeps_files_and_rm_removes(registry, pulled):
    first = run_minict(["run", "--name", "keeper", image(registry, "busybox:latest"), "sh", "-c",
                        "cat /data.txt 2>/dev/null; echo written >> /data.txt"], pulled)
    assert first.returncode == 0
    assert first.stdout == ""
    second = run_minict(["start", "--name", "keeper"], pulled)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "written\n"
    assert run_minict(["rm", "--name", "keeper"], pulled).returncode == 0
    assert json.loads(run_minict(["list-containers"], pulled).stdout) == []
    assert not os.path.exists(os.path.join(pulled, "containers", "keeper"))
    again = run_minict(["run", "--name", "keeper", image(registry, "busybox:latest"), "cat", "/data.txt"], pulled)
    assert again.returncode == 1
    assert "No such file" in again.stderr or "can't open" in again.stderr


def test_run_masked_and_readonly_paths(registry, pulled):
    script = ("cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; "
              "echo x > /proc/sys/kernel/domainname && echo writable; "
              "echo x > /proc/sysrq-trigger && echo writable; "
              "touch /sys/kernel/x && echo writable; true")
    result = run_minict(["run", "--rm", image(registry, "busybox:latest"), "sh", "-c", script], pulled)
    assert result.returncode == 0
    assert result.stdout.split() == ["0", "0"]
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert "/proc/sys/kernel/domainname: Read-only file system" in errors[0]
    assert "/proc/sysrq-trigger" in errors[1]
    assert "/sys/kernel/x: Read-only file system" in errors[2]


def test_run_leaves_host_mounts_unchanged(registry, pulled):
    before = mountinfo()
    assert run_minict(["run", "--name", "m1", image(registry, "busybox:latest"), "true"], pulled).returncode == 0
    failed = run_minict(["run", "--name", "m2", image(registry, "busybox:latest"), "/no/such/command"], pulled)
    assert failed.returncode == 127
    assert run_minict(["rm", "--name", "m1"], pulled).returncode == 0
    assert run_minict(["rm", "--name", "m2"], pulled).returncode == 0
    assert mountinfo() == before
    assert not [line for line in open("/proc/self/mountinfo") if pulled in line]


def test_run_wrong_architecture(registry, root):
    reference = image(registry, "alpine-multi:3.20.3")
    assert run_minict(["pull", "--platform", "linux/arm64", reference], root).returncode == 0
    result = run_minict(["run", "--rm", reference, "echo", "hi"], root)
    if os.path.exists("/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        pytest.fail("a qemu-aarch64 binfmt_misc handler is registered, so arm64 binaries run here")
    assert result.returncode == 126
    assert "exec format error" in result.stderr
    assert "built for aarch64 and this machine is x86_64" in result.stderr


def test_run_name_collision(registry, pulled):
    assert run_minict(["run", "--name", "dup", image(registry, "busybox:latest"), "true"], pulled).returncode == 0
    result = run_minict(["run", "--name", "dup", image(registry, "busybox:latest"), "true"], pulled)
    assert result.returncode == 1
    assert "the container name 'dup' is already in use" in result.stderr


def test_run_concurrent_same_name_one_wins(registry, pulled):
    env = dict(os.environ, MINICT_DIR=pulled)
    processes = [subprocess.Popen([sys.executable, "-m", "minict", "run", "--name", "race",
                                   image(registry, "busybox:latest"), "true"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 1]
    assert any("already in use" in err for code, err in results if code == 1), results


def test_run_network_none_has_only_lo(registry, pulled):
    result = run_minict(["run", "--rm", "--network", "none", image(registry, "busybox:latest"), "ip", "-o", "link"],
                        pulled)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].split()[1] == "lo:"
    assert "UP" in lines[0]


def test_run_user_and_workdir(registry, pulled):
    alpine = image(registry, "alpine:3.20.3")
    result = run_minict(["run", "--rm", "-u", "nobody", alpine, "sh", "-c", "id -u; id -g"], pulled)
    assert result.stdout.split() == ["65534", "65534"]
    result = run_minict(["run", "--rm", "-u", "daemon", alpine, "id", "-G"], pulled)
    assert result.stdout.split() == ["2", "1", "4"]
    result = run_minict(["run", "--rm", "-u", "1234:55", "-w", "/new/dir", alpine, "sh", "-c", "id -u; id -g; pwd"],
                        pulled)
    assert result.stdout.split() == ["1234", "55", "/new/dir"]
    result = run_minict(["run", "--rm", "-u", "ghost", alpine, "id"], pulled)
    assert result.returncode == 125
    assert "unable to find user ghost" in result.stderr


def test_run_capabilities_default_set(registry, pulled):
    result = run_minict(["run", "--rm", image(registry, "busybox:latest"), "grep", "Cap", "/proc/self/status"], pulled)
    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert fields["CapBnd"] == "00000000a80425fb"
    assert fields["CapEff"] == "00000000a80425fb"


def test_run_environment(registry, pulled):
    result = run_minict(["run", "--rm", "--name", "envbox", "-e", "A=1=2", "-e", "GREETING=hi", "-e", "PASSED",
                         "-e", "UNSET_HERE", image(registry, "layers:latest"), "env"], pulled,
                        env={"PASSED": "from host"})
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["A"] == "1=2"
    assert env["GREETING"] == "hi"
    assert env["HOSTNAME"] == "envbox"
    assert env["PASSED"] == "from host"
    assert "UNSET_HERE" not in env
    assert env["HOME"] == "/home/app"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "TERM" not in env


def test_run_pull_never_and_missing(registry, root):
    result = run_minict(["run", "--pull", "never", image(registry, "busybox:latest"), "true"], root)
    assert result.returncode == 1
    assert "--pull never" in result.stderr
    result = run_minict(["run", "--rm", image(registry, "busybox:latest"), "echo", "pulled"], root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "pulled"


def test_run_invalid_names(registry, pulled):
    for name in ["a/b", "..", "-x", "a" * 129, "ünï", "a b"]:
        result = run_minict(["run", f"--name={name}", image(registry, "busybox:latest"), "true"], pulled)
        assert result.returncode == 1, name
        assert "invalid container name" in result.stderr, name
    assert os.listdir(os.path.join(pulled, "containers")) == []


def test_rm_running_needs_force(registry, pulled):
    env = dict(os.environ, MINICT_DIR=pulled)
    process = subprocess.Popen([sys.executable, "-m", "minict", "run", "--name", "busy",
                                image(registry, "busybox:latest"), "sleep", "60"], env=env)
    state_path = os.path.join(pulled, "containers", "busy", "state.json")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(state_path) and json.load(open(state_path)).get("status") == "running":
            break
        time.sleep(0.02)
    result = run_minict(["rm", "--name", "busy"], pulled)
    assert result.returncode == 1
    assert "is running; stop it first or use rm --force" in result.stderr
    assert run_minict(["rm", "--force", "--name", "busy"], pulled).returncode == 0
    assert process.wait(timeout=20) == 137


def test_run_inherits_only_stdio(registry, pulled):
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        result = subprocess.run([sys.executable, "-m", "minict", "run", "--rm", image(registry, "busybox:latest"),
                                 "ls", "/proc/self/fd"], env=dict(os.environ, MINICT_DIR=pulled),
                                capture_output=True, text=True, pass_fds=(write_end,))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["0", "1", "2", "3"]  # 3 is ls's own listing


def test_run_terminal(registry, pulled):
    env = dict(os.environ, MINICT_DIR=pulled)
    pid, master = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "minict", "run", "--rm", image(registry, "alpine:3.20.3"),
                                   "sh", "-c", "tty; stty size; echo TERM=$TERM"], env)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    output = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            output += data
    _, status = os.waitpid(pid, 0)
    text = output.decode().replace("\r", "")
    assert os.waitstatus_to_exitcode(status) == 0
    assert "/dev/pts/0\n" in text or "/dev/console\n" in text
    assert "33 111\n" in text
    assert "TERM=xterm\n" in text


def test_run_mount_target_symlink_stays_in_rootfs(registry, pulled, tmp_path):
    """An image whose /etc/hostname and /dev/shm are symlinks to host paths: the mounts land inside the rootfs."""
    sentinel_dir = tmp_path / "host"
    sentinel_dir.mkdir()
    sentinel = sentinel_dir / "hostname"
    sentinel.write_text("host file\n")
    assert run_minict(["run", "--name", "evil", image(registry, "busybox:latest"), "true"], pulled).returncode == 0
    upper = os.path.join(pulled, "containers", "evil", "upper")
    import shutil

    os.makedirs(os.path.join(upper, "etc"), exist_ok=True)
    for path in (os.path.join(upper, "etc", "hostname"), os.path.join(upper, "dev")):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    os.symlink(str(sentinel), os.path.join(upper, "etc", "hostname"))
    os.symlink(str(sentinel_dir), os.path.join(upper, "dev"))
    before = mountinfo()
    result = run_minict(["start", "--name", "evil"], pulled)
    assert result.returncode == 0, result.stderr
    assert sentinel.read_text() == "host file\n"
    assert sorted(os.listdir(sentinel_dir)) == ["hostname"]
    assert mountinfo() == before
    host_side = os.path.join(upper, str(sentinel_dir).lstrip("/"))
    assert os.path.isdir(host_side)


def test_rmi_refuses_image_in_use(registry, pulled):
    reference = image(registry, "busybox:latest")
    assert run_minict(["run", "--name", "user1", reference, "true"], pulled).returncode == 0
    result = run_minict(["rmi", reference], pulled)
    assert result.returncode == 1
    assert "is used by container user1" in result.stderr
    forced = run_minict(["rmi", "--force", reference], pulled)
    assert forced.returncode == 0, forced.stderr
    started = run_minict(["start", "--name", "user1"], pulled)
    assert started.returncode == 0, started.stderr


def test_run_does_not_import_registry_client(registry, pulled):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "minict", "run", "--rm",
                             image(registry, "busybox:latest"), "true"],
                            env=dict(os.environ, MINICT_DIR=pulled), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    for heavy in ("requests", "urllib3", "rich", "libarchive", "isal", "backports.zstd"):
        assert heavy not in imported, heavy


def test_run_native_snapshotter(registry, root):
    env = {"MINICT_SNAPSHOTTER": "native"}
    reference = image(registry, "layers:latest")
    assert run_minict(["pull", "-q", reference], root, env=env).returncode == 0
    result = run_minict(["run", "--name", "copy", reference], root, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from /home/app as app\n"
    result = run_minict(["run", "--rm", reference, "ls /data/opaque"], root, env=env)
    assert result.stdout == "new.txt\n"
    rootfs = os.path.join(root, "containers", "copy", "rootfs")
    assert os.path.isfile(os.path.join(rootfs, "data", "keep.txt"))
    assert not [line for line in open("/proc/self/mountinfo") if root in line]


@pytest.mark.parametrize("flags, message", [
    (["-e", "=x"], "invalid environment entry '=x'"),
    (["-w", "relative"], "invalid working directory 'relative'"),
])
def test_run_invalid_flags_before_pull(root, flags, message):
    result = run_minict(["run", *flags, "127.0.0.1:9/never-pulled", "true"], root)
    assert result.returncode == 1
    assert message in result.stderr
    assert "cannot reach" not in result.stderr
    assert os.listdir(os.path.join(root, "containers")) == []


def test_state_root_not_creatable(tmp_path):
    result = run_minict(["--root", "/proc/minict-nope", "list-images"], str(tmp_path / "unused"))
    assert result.returncode == 1
    assert "cannot create the state directory /proc/minict-nope" in result.stderr
