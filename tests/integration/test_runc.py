"""minict-runc: runc's command line, driven directly and by podman and containerd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root: run the suite as root")

RUNC = [sys.executable, "-m", "minict.runc.cli"]


@pytest.fixture(scope="module")
def busybox_layout(registry, tmp_path_factory):
    """The testbed's busybox image as an OCI layout (skopeo), for umoci to unpack into bundles."""
    layout = str(tmp_path_factory.mktemp("layout") / "busybox")
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{registry.address}/busybox:latest",
                    f"oci:{layout}:latest"], check=True)
    return layout


@pytest.fixture
def bundle(busybox_layout, tmp_path):
    """A runc bundle (config.json and rootfs) unpacked by umoci, running a shell script given later."""
    path = str(tmp_path / "bundle")
    subprocess.run(["umoci", "unpack", "--image", f"{busybox_layout}:latest", path], check=True,
                   stdout=subprocess.DEVNULL)
    return path


@pytest.fixture
def runtime_root(tmp_path):
    root = str(tmp_path / "runc-root")
    yield root
    # Leave no container behind, whatever the test did.
    if os.path.isdir(root):
        for container_id in os.listdir(root):
            runc(root, "delete", "--force", container_id)


def set_process(bundle: str, args: list[str], **changes) -> dict:
    path = os.path.join(bundle, "config.json")
    with open(path) as file:
        spec = json.load(file)
    spec["process"]["args"] = args
    spec["process"]["terminal"] = False
    for key, value in changes.items():
        spec[key] = value
    with open(path, "w") as file:
        json.dump(spec, file)
    return spec


def runc(root: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    return subprocess.run(RUNC + ["--root", root, *args], text=True, timeout=60, **kwargs)


def state(root: str, container_id: str) -> dict:
    result = runc(root, "state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def create(root: str, bundle: str, container_id: str, output: str, *extra: str) -> int:
    """create with the container's stdout and stderr in `output`; return the pid from --pid-file."""
    pid_file = os.path.join(os.path.dirname(bundle), f"{container_id}.pid")
    with open(output, "w") as out:
        result = runc(root, "create", "--bundle", bundle, "--pid-file", pid_file, *extra, container_id,
                      stdout=out, stderr=subprocess.STDOUT, capture_output=False)
    assert result.returncode == 0, open(output).read()
    with open(pid_file) as file:
        return int(file.read())


def cgroup_parents(name: str) -> list[str]:
    """The host directories of the cgroup `/name` in every tree (v1) or the unified tree (v2)."""
    from minict.runtime.cgroups import detect

    return sorted({os.path.join(mount, name) for mount in detect()[1].values()})


def remove_cgroup_parent(name: str, existed: bool) -> None:
    """Remove the parent cgroup an engine made for its containers (podman's libpod_parent, a ctr namespace)."""
    if existed:
        return
    for path in cgroup_parents(name):
        try:
            os.rmdir(path)
        except OSError:
            pass


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_create_start_kill_delete(bundle, runtime_root, tmp_path):
    set_process(bundle, ["sh", "-c", "echo started; trap 'echo got USR1' USR1; while true; do sleep 0.1; done"])
    output = str(tmp_path / "out")
    pid = create(runtime_root, bundle, "c1", output)
    document = state(runtime_root, "c1")
    assert document["status"] == "created"
    assert document["pid"] == pid
    assert document["id"] == "c1"
    assert document["bundle"] == bundle
    assert document["ociVersion"]
    assert open(output).read() == ""  # the command has not run yet
    assert runc(runtime_root, "start", "c1").returncode == 0
    assert state(runtime_root, "c1")["status"] == "running"
    wait_until(lambda: "started" in open(output).read())
    listing = json.loads(runc(runtime_root, "list", "--format", "json").stdout)
    assert [(row["id"], row["status"]) for row in listing] == [("c1", "running")]
    assert json.loads(runc(runtime_root, "ps", "--format", "json", "c1").stdout)[0] == pid
    assert runc(runtime_root, "kill", "c1", "USR1").returncode == 0
    wait_until(lambda: "got USR1" in open(output).read())
    result = runc(runtime_root, "delete", "c1")
    assert result.returncode == 1
    assert "not stopped: running" in result.stderr
    assert runc(runtime_root, "pause", "c1").returncode == 0
    assert state(runtime_root, "c1")["status"] == "paused"
    assert runc(runtime_root, "resume", "c1").returncode == 0
    assert state(runtime_root, "c1")["status"] == "running"
    assert runc(runtime_root, "kill", "c1", "SIGKILL").returncode == 0
    wait_until(lambda: state(runtime_root, "c1")["status"] == "stopped")
    assert runc(runtime_root, "delete", "c1").returncode == 0
    result = runc(runtime_root, "state", "c1")
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert not os.path.exists(os.path.join(runtime_root, "c1"))


def test_errors_name_the_problem(bundle, runtime_root, tmp_path):
    for verb in ("state", "start", "kill", "delete", "pause", "resume", "ps"):
        result = runc(runtime_root, verb)
        assert result.returncode != 0, verb
        assert "missing container ID" in result.stderr, verb
        result = runc(runtime_root, verb, "ghost")
        assert result.returncode == 1, verb
        assert "does not exist" in result.stderr, verb
    assert runc(runtime_root, "delete", "--force", "ghost").returncode == 0
    set_process(bundle, ["sleep", "100"])
    create(runtime_root, bundle, "twice", str(tmp_path / "out"))
    result = runc(runtime_root, "create", "--bundle", bundle, "twice")
    assert result.returncode == 1
    assert "already exists" in result.stderr
    result = runc(runtime_root, "create", "--bundle", str(tmp_path), "nobundle")
    assert result.returncode == 1
    assert "no config.json in the bundle" in result.stderr
    assert not os.path.exists(os.path.join(runtime_root, "nobundle"))
    result = runc(runtime_root, "create", "--bundle", bundle, "bad/id")
    assert result.returncode == 1
    assert "invalid container id" in result.stderr
    result = runc(runtime_root, "kill", "twice", "NOPE")
    assert result.returncode == 1
    assert "invalid signal 'NOPE'" in result.stderr
    # A created container is deleted without --force, as with runc.
    pid = state(runtime_root, "twice")["pid"]
    assert runc(runtime_root, "delete", "twice").returncode == 0
    wait_until(lambda: not os.path.exists(f"/proc/{pid}/status") or "Z" in open(f"/proc/{pid}/stat").read().split()[2])


def test_hooks_get_the_state_in_order(bundle, runtime_root, tmp_path):
    record = tmp_path / "hooks"
    record.mkdir()

    def hook(name: str, directory: str) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {directory}/{name}.json"]}

    hooks = {name: [hook(name, str(record))] for name in ("prestart", "createRuntime", "createContainer",
                                                           "poststart", "poststop")}
    hooks["startContainer"] = [hook("startContainer", "/tmp")]  # runs inside the container
    set_process(bundle, ["sleep", "100"], hooks=hooks)
    pid = create(runtime_root, bundle, "hooked", str(tmp_path / "out"))
    for name in ("prestart", "createRuntime", "createContainer"):
        document = json.loads((record / f"{name}.json").read_text())
        assert document["id"] == "hooked", name
        assert document["pid"] == pid, name
        assert document["status"] == "creating", name
        assert document["bundle"] == bundle, name
    assert not (record / "poststart.json").exists()
    runc(runtime_root, "start", "hooked")
    inside = json.loads(open(os.path.join(bundle, "rootfs", "tmp", "startContainer.json")).read())
    assert (inside["status"], inside["pid"]) == ("created", pid)
    assert json.loads((record / "poststart.json").read_text())["status"] == "running"
    runc(runtime_root, "delete", "--force", "hooked")
    assert json.loads((record / "poststop.json").read_text())["status"] == "stopped"


def test_failing_hook_stops_create(bundle, runtime_root, tmp_path):
    set_process(bundle, ["true"], hooks={"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 3"]}]})
    result = runc(runtime_root, "create", "--bundle", bundle, "failing")
    assert result.returncode == 1
    assert "prestart hook /bin/sh failed with status 3: no" in result.stderr
    assert not os.path.exists(os.path.join(runtime_root, "failing"))
    set_process(bundle, ["true"], hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]})
    result = runc(runtime_root, "create", "--bundle", bundle, "slow")
    assert result.returncode == 1
    assert "timed out after 1 seconds" in result.stderr


def test_exec_forms(bundle, runtime_root, tmp_path):
    set_process(bundle, ["sleep", "100"])
    create(runtime_root, bundle, "box", str(tmp_path / "out"))
    runc(runtime_root, "start", "box")
    result = runc(runtime_root, "exec", "box", "sh", "-c", "echo $((6*7)); exit 4")
    assert (result.returncode, result.stdout) == (4, "42\n")
    process = {"args": ["sh", "-c", "id -u; pwd; echo $X"], "cwd": "/tmp", "env": ["X=from-file", "PATH=/bin"],
               "user": {"uid": 65534, "gid": 65534}}
    process_file = tmp_path / "process.json"
    process_file.write_text(json.dumps(process))
    result = runc(runtime_root, "exec", "--process", str(process_file), "box")
    assert result.stdout == "65534\n/tmp\nfrom-file\n", result.stderr
    pid_file = str(tmp_path / "exec.pid")
    # The detached process inherits stdout and stderr, so they must not be pipes this test waits on.
    result = runc(runtime_root, "exec", "--detach", "--pid-file", pid_file, "box", "sleep", "30",
                  capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert result.returncode == 0
    exec_pid = int(open(pid_file).read())
    assert exec_pid in json.loads(runc(runtime_root, "ps", "--format", "json", "box").stdout)
    result = runc(runtime_root, "exec", "box")
    assert result.returncode == 1
    assert "missing command" in result.stderr


def test_update_spec_features_version_and_log(bundle, runtime_root, tmp_path):
    from minict.runtime.cgroups import detect

    set_process(bundle, ["sleep", "100"])
    create(runtime_root, bundle, "tuned", str(tmp_path / "out"))
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"pids": {"limit": 42}}))
    assert runc(runtime_root, "update", f"--resources={resources}", "tuned").returncode == 0
    version, mounts = detect()
    pids_mount = mounts["" if version == "v2" else "pids"]
    with open(os.path.join(pids_mount, "minict", "tuned", "pids.max")) as file:
        assert file.read().strip() == "42"
    result = runc(runtime_root, "update", "--resources", "-", "tuned", input='{"pids": {"limit": 7}}')
    assert result.returncode == 0
    with open(os.path.join(pids_mount, "minict", "tuned", "pids.max")) as file:
        assert file.read().strip() == "7"

    empty = tmp_path / "new-bundle"
    empty.mkdir()
    assert runc(runtime_root, "spec", "--bundle", str(empty)).returncode == 0
    spec = json.loads((empty / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    result = runc(runtime_root, "spec", "--bundle", str(empty))
    assert result.returncode == 1
    assert "already exists" in result.stderr
    features = json.loads(runc(runtime_root, "features").stdout)
    assert "createContainer" in features["hooks"]
    assert "pid" in features["linux"]["namespaces"]
    version_lines = runc(runtime_root, "--version").stdout.splitlines()
    assert version_lines[0].startswith("minict-runc version ")
    assert version_lines[1] == "spec: 1.0.2"
    log = tmp_path / "log.json"
    result = runc(runtime_root, "--log", str(log), "--log-format=json", "state", "ghost")
    assert result.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    alias = subprocess.run([sys.executable, "-m", "minict", "runtime", "--root", runtime_root, "state", "tuned"],
                           capture_output=True, text=True)
    assert json.loads(alias.stdout)["status"] == "created"


def test_console_socket_gets_the_pty(bundle, runtime_root, tmp_path):
    spec = set_process(bundle, ["sh", "-c", "tty; echo done"])
    spec["process"]["terminal"] = True
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    create_process = subprocess.Popen(RUNC + ["--root", runtime_root, "create", "--bundle", bundle,
                                              "--console-socket", path, "tty"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    connection, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(connection, 1024, 1)
    assert create_process.wait(timeout=30) == 0, create_process.stderr.read()
    master = fds[0]
    runc(runtime_root, "start", "tty")
    output = b""
    while b"done" not in output:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    connection.close()
    server.close()
    assert output.replace(b"\r", b"").split(b"\n")[0].startswith(b"/dev/pts/")


PODMAN_FLAGS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture
def podman():
    """podman with its state in a temporary folder, using minict-runc (state root there too)."""
    runtime = shutil.which("minict-runc", path=os.path.dirname(sys.executable))
    assert runtime, "minict-runc is not installed next to this Python"
    import tempfile

    leftovers = [p for p in ("/dev/shm/libpod_lock", "/run/libpod", "/run/containers") if not os.path.exists(p)]
    parent_existed = any(os.path.exists(p) for p in cgroup_parents("libpod_parent"))
    work = tempfile.mkdtemp(prefix="minict-podman-")  # podman wants a runroot path of at most 50 characters
    base = ["podman", "--root", f"{work}/root", "--runroot", f"{work}/run", "--cgroup-manager", "cgroupfs",
            "--runtime", runtime, "--runtime-flag", f"root={work}/runc"]
    yield base
    subprocess.run(base + ["rm", "-a", "-f", "-t", "0"], capture_output=True)
    with open("/proc/self/mountinfo") as file:
        for line in sorted((line.split()[4] for line in file if line.split()[4].startswith(work)), reverse=True):
            subprocess.run(["umount", "-l", line], capture_output=True)
    # podman makes these outside its --root; remove the ones this test made, unless another podman runs.
    if subprocess.run(["pgrep", "-x", "podman"], capture_output=True).returncode != 0:
        for path in leftovers:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
    shutil.rmtree(work, ignore_errors=True)
    remove_cgroup_parent("libpod_parent", parent_existed)


def test_podman_drives_minict_runc(podman, registry):
    image = f"{registry.address}/busybox:latest"
    assert subprocess.run(podman + ["pull", "-q", "--tls-verify=false", image], capture_output=True).returncode == 0

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(podman + list(args), capture_output=True, text=True, timeout=90, **kwargs)

    result = run("run", "--rm", *PODMAN_FLAGS, image, "sh", "-c", "echo hello; exit 3")
    assert (result.returncode, result.stdout) == (3, "hello\n"), result.stderr
    result = run("run", "-d", "--name", "svc", *PODMAN_FLAGS, image, "sh", "-c",
                 "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    assert result.returncode == 0, result.stderr
    result = run("exec", "svc", "sh", "-c", "echo inside; exit 5")
    assert (result.returncode, result.stdout) == (5, "inside\n")
    assert run("pause", "svc").returncode == 0
    assert run("inspect", "-f", "{{.State.Status}}", "svc").stdout.strip() == "paused"
    assert run("unpause", "svc").returncode == 0
    assert run("kill", "-s", "USR1", "svc").returncode == 0
    assert run("stop", "-t", "10", "svc").returncode == 0
    assert run("inspect", "-f", "{{.State.ExitCode}}", "svc").stdout.strip() == "0"
    assert run("run", "-d", "--name", "hard", *PODMAN_FLAGS, image, "sleep", "100").returncode == 0
    assert run("rm", "-f", "-t", "0", "hard").returncode == 0
    # -it: conmon passes --console-socket and copies the terminal.
    result = subprocess.run(["script", "-qec", " ".join(podman + ["run", "--rm", "-it", *PODMAN_FLAGS, image, "tty"]),
                             "/dev/null"], capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert "/dev/pts/" in result.stdout, result.stdout + result.stderr


@pytest.fixture
def containerd(tmp_path):
    """A containerd with its root, state and socket in a temporary folder, without the CRI plugin."""
    work = tmp_path / "containerd"
    work.mkdir()
    made_run = not os.path.exists("/run/containerd")
    parent_existed = any(os.path.exists(p) for p in cgroup_parents("default"))
    config = work / "config.toml"
    config.write_text(f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
                      f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                      f'[grpc]\n  address = "{work}/containerd.sock"\n[ttrpc]\n  address = "{work}/ttrpc.sock"\n')
    log = open(work / "log", "w")
    daemon = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    socket_path = str(work / "containerd.sock")
    wait_until(lambda: os.path.exists(socket_path), 30)
    yield ["ctr", "-a", socket_path], str(work)
    daemon.terminate()
    daemon.wait(timeout=30)
    log.close()
    with open("/proc/self/mountinfo") as file:
        for target in sorted((line.split()[4] for line in file if line.split()[4].startswith(str(work))), reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
    if made_run:
        shutil.rmtree("/run/containerd", ignore_errors=True)
    remove_cgroup_parent("default", parent_existed)


def test_containerd_drives_minict_runc(containerd, registry):
    ctr, work = containerd
    runtime = shutil.which("minict-runc", path=os.path.dirname(sys.executable))
    image = f"{registry.address}/busybox:latest"
    flags = ["--runc-binary", runtime, "--runc-root", f"{work}/runc"]

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(ctr + list(args), capture_output=True, text=True, timeout=90)

    assert call("images", "pull", "--plain-http", image).returncode == 0
    result = call("run", "--rm", *flags, image, "once", "sh", "-c", "echo from-containerd")
    assert (result.returncode, result.stdout) == (0, "from-containerd\n"), result.stderr
    assert call("run", "-d", *flags, image, "svc", "sleep", "100").returncode == 0
    result = call("task", "exec", "--exec-id", "e1", "svc", "sh", "-c", "echo exec; exit 6")
    assert (result.returncode, result.stdout) == (6, "exec\n"), result.stderr
    assert call("task", "pause", "svc").returncode == 0
    assert "PAUSED" in call("task", "ls").stdout
    assert call("task", "resume", "svc").returncode == 0
    assert call("task", "kill", "-s", "SIGKILL", "svc").returncode == 0
    wait_until(lambda: "STOPPED" in call("task", "ls").stdout)
    assert call("task", "delete", "svc").returncode == 0
    assert call("container", "delete", "svc").returncode == 0
    assert os.listdir(f"{work}/runc/default") == []  # the shim's --root is <runc-root>/<namespace>


@pytest.fixture
def open_tmp():
    """A directory that the ids of a user namespace can reach (pytest's own are mode 0700)."""
    import tempfile

    path = tempfile.mkdtemp(prefix="minict-userns-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_config_features_reach_the_container(busybox_layout, open_tmp, tmp_path):
    bundle = os.path.join(open_tmp, "bundle")
    subprocess.run(["umoci", "unpack", "--image", f"{busybox_layout}:latest", bundle], check=True,
                   stdout=subprocess.DEVNULL)
    os.chmod(bundle, 0o755)
    runtime_root = os.path.join(open_tmp, "runc-root")
    script = "; ".join([
        "cat /proc/self/uid_map /proc/self/gid_map",
        "id -u; id -G",
        "uname -m",
        "cat /proc/sys/net/ipv4/ip_forward",
        "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status",
        "mkdir /tmp/blocked 2>&1 || true",
        "ulimit -n; ulimit -Hn",
        "cat /proc/self/oom_score_adj",
        "umask",
        "touch /readonly-root 2>&1 || true",
        "stat -c '%F %t:%T' /proc/keys",
        "ls -ln /dev/fuse-like",
    ])
    set_process(bundle, ["sh", "-c", script])
    with open(os.path.join(bundle, "config.json")) as file:
        spec = json.load(file)
    process = spec["process"]
    process["user"] = {"uid": 0, "gid": 0, "additionalGids": [5, 7], "umask": 0o027}
    process["noNewPrivileges"] = True
    process["oomScoreAdj"] = 123
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    process["capabilities"] = {kind: ["CAP_KILL", "CAP_CHOWN"] for kind in ("bounding", "effective", "permitted")}
    linux = spec["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "user")]
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux["personality"] = {"domain": "LINUX32"}
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    linux["maskedPaths"] = ["/proc/keys"]
    linux["devices"] = [{"path": "/dev/fuse-like", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}]
    linux.pop("resources", None)
    spec["root"]["readonly"] = True
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)
    # The ids of the user namespace own the rootfs, as `umoci unpack --rootless` or a chown would arrange.
    subprocess.run(["chown", "-R", "100000:100000", os.path.join(bundle, "rootfs")], check=True)
    output = str(tmp_path / "out")
    with open(output, "w") as out:
        result = runc(runtime_root, "run", "--bundle", bundle, "features", stdout=out, stderr=subprocess.STDOUT,
                      capture_output=False)
    lines = [line.strip() for line in open(output).read().splitlines()]
    assert result.returncode == 0, lines
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == "0"
    assert lines[3].split() == ["0", "5", "7"]
    assert lines[4] == "i686"
    assert lines[5] == "1"
    assert lines[6].split() == ["CapEff:", "0000000000000021"]
    assert lines[7].split() == ["NoNewPrivs:", "1"]
    assert lines[8].split() == ["Seccomp:", "2"]
    assert lines[9] == "mkdir: can't create directory '/tmp/blocked': Permission denied"
    assert lines[10:12] == ["100", "200"]
    assert lines[12] == "123"
    assert lines[13] == "0027"
    assert lines[14] == "touch: /readonly-root: Read-only file system"
    assert lines[15] == "character special file 1:3"  # masked: /dev/null is bound over it
    # No mknod in a user namespace: the host's node with the same numbers (/dev/null) is bound there instead.
    assert lines[16].split()[:6] == ["crw-rw-rw-", "1", "65534", "65534", "1,", "3"]


def test_devices_cgroup_rules(bundle, runtime_root, tmp_path):
    from minict.runtime.cgroups import detect

    version, mounts = detect()
    if version != "v1":
        pytest.skip("device rules on cgroup v2 need an eBPF program, which minict-runc does not load yet")
    set_process(bundle, ["sh", "-c", "head -c 3 /dev/zero | wc -c; mknod /tmp/kmsg c 1 11 2>&1; sleep 100"])
    with open(os.path.join(bundle, "config.json")) as file:
        spec = json.load(file)
    spec["process"]["capabilities"] = {kind: ["CAP_MKNOD"] for kind in ("bounding", "effective", "permitted")}
    spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                              {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"}]}
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)
    output = str(tmp_path / "out")
    create(runtime_root, bundle, "devices", output)
    with open(os.path.join(mounts["devices"], "minict", "devices", "devices.list")) as file:
        allowed = file.read().split()
    # The spec's deny-all, its one allow, then the defaults every container needs (null, zero, ..., the ptys).
    assert " ".join(allowed) == ("c 10:200 rw c 1:3 rwm c 1:5 rwm c 1:7 rwm c 1:8 rwm c 1:9 rwm c 5:0 rwm "
                                 "c 5:1 rwm c 5:2 rwm c 136:* rwm")
    runc(runtime_root, "start", "devices")
    wait_until(lambda: "mknod" in open(output).read())
    lines = open(output).read().splitlines()
    assert lines[0] == "3"
    assert lines[1] == "mknod: /tmp/kmsg: Operation not permitted"


def test_exec_joins_the_user_namespace(busybox_layout, open_tmp, tmp_path):
    bundle = os.path.join(open_tmp, "bundle")
    subprocess.run(["umoci", "unpack", "--image", f"{busybox_layout}:latest", bundle], check=True,
                   stdout=subprocess.DEVNULL)
    os.chmod(bundle, 0o755)
    subprocess.run(["chown", "-R", "200000:200000", os.path.join(bundle, "rootfs")], check=True)
    runtime_root = os.path.join(open_tmp, "runc-root")
    set_process(bundle, ["sleep", "100"])
    with open(os.path.join(bundle, "config.json")) as file:
        spec = json.load(file)
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)
    try:
        create(runtime_root, bundle, "mapped", str(tmp_path / "out"))
        runc(runtime_root, "start", "mapped")
        result = runc(runtime_root, "exec", "mapped", "sh", "-c", "cat /proc/self/uid_map; id -u; touch /as-root")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["0", "200000", "65536", "0"]
        assert os.stat(os.path.join(bundle, "rootfs", "as-root")).st_uid == 200000  # host root is not reachable
    finally:
        runc(runtime_root, "delete", "--force", "mapped")


def test_cgroup_mounts_match_runc(bundle, runtime_root, tmp_path):
    """The trees under /sys/fs/cgroup in the container are the ones runc mounts: on a hybrid host, no cgroup2."""
    spec = set_process(bundle, ["sh", "-c", "grep ' /sys/fs/cgroup' /proc/self/mountinfo"])
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"] + [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}]
    namespaces = spec["linux"]["namespaces"]
    if not any(n["type"] == "cgroup" for n in namespaces):
        namespaces.append({"type": "cgroup"})
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)

    def trees(command: list[str]) -> list[tuple[str, str]]:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        fields = [line.split(" - ") for line in result.stdout.splitlines()]
        return sorted((left.split()[4], right.split()[0]) for left, right in fields)

    reference = trees(["runc", "--root", str(tmp_path / "real-runc"), "run", "--bundle", bundle, "real-runc-cgroups"])
    ours = trees(RUNC + ["--root", runtime_root, "run", "--bundle", bundle, "minict-cgroups"])
    assert ours == reference
    assert reference[0][0] == "/sys/fs/cgroup"


def cgroup2_mount() -> str | None:
    """Where a cgroup2 tree is mounted on this host (/sys/fs/cgroup/unified on a hybrid one), or None."""
    from minict.runtime.cgroups import read_cgroup_mounts

    return next((mount_point for mount_point, fstype, _ in read_cgroup_mounts() if fstype == "cgroup2"), None)


def test_clone_into_v2_cgroup(bundle, runtime_root, tmp_path):
    """On cgroup v2 the init and exec'd processes start inside the cgroup (clone3 with CLONE_INTO_CGROUP)."""
    unified = cgroup2_mount()
    if unified is None:
        pytest.skip("this host mounts no cgroup2 tree")
    name = f"minict-v2-test-{os.getpid()}"
    spec = set_process(bundle, ["sh", "-c", "cat /proc/self/cgroup; exec sleep 30"])
    spec["linux"]["cgroupsPath"] = f"/{name}"
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "cgroup"]
    spec["linux"].pop("resources", None)
    with open(os.path.join(bundle, "config.json"), "w") as file:
        json.dump(spec, file)

    def minict_runc(*args: str, output=None) -> subprocess.CompletedProcess:
        # This host's cgroup2 tree is taken as the only one, and joining by a write is made
        # to fail, so a process can only enter the cgroup by being cloned into it.
        script = f"""
import sys
from minict.runtime import cgroups
cgroups.detect = lambda: ("v2", {{"": {unified!r}}})
def fail_join(self, pid=0):
    raise OSError("joined by a write to cgroup.procs")
cgroups.CgroupV2.join = fail_join
from minict.runc.cli import main
sys.exit(main(["--root", {runtime_root!r}, *{list(args)!r}]))
"""
        return subprocess.run([sys.executable, "-c", script], stdout=output or subprocess.PIPE,
                              stderr=output or subprocess.PIPE, text=True, timeout=60)

    log = tmp_path / "init.log"
    try:
        with open(log, "w") as out:  # a file, not a pipe: the detached init keeps its stdout and stderr open
            run = minict_runc("run", "--detach", "--bundle", bundle, "v2-clone", output=out)
        assert run.returncode == 0, log.read_text()
        wait_until(lambda: f"0::/{name}" in log.read_text())
        executed = minict_runc("exec", "v2-clone", "cat", "/proc/self/cgroup")
        assert executed.returncode == 0, executed.stderr
        assert f"0::/{name}" in executed.stdout.splitlines()
    finally:
        minict_runc("delete", "--force", "v2-clone")
    left_behind = os.path.isdir(os.path.join(unified, name))
    if left_behind:
        os.rmdir(os.path.join(unified, name))
    assert not left_behind  # delete --force removed it
