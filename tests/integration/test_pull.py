"""minict pull against the testbed's real Distribution registry."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from tests.helpers import ScriptedServer, run_minict

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pulls unpack as root: run the suite as root")


def image_record(root: str, name: str) -> dict:
    import urllib.parse

    with open(os.path.join(root, "images", urllib.parse.quote(name, safe=":@") + ".json")) as file:
        return json.load(file)


def list_images(root: str) -> list[str]:
    result = run_minict(["list-images"], root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_images_empty_prints_brackets(root):
    result = run_minict(["list-images"], root)
    assert result.returncode == 0
    assert result.stdout == "[]\n"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@pytest.mark.parametrize("tag", [
    "alpine:3.20.3", "alpine:3.20", "alpine:latest", "alpine:3.18.9", "alpine:3.18", "alpine:3.20.3-zstd",
    "alpine:3.20.3-uncompressed", "alpine-multi:3.20.3", "alpine-multi:latest", "alpine-multi:3.20.3-v2s2",
    "busybox:latest", "busybox:1.35.0", "layers:latest", "layers:zstd", "layers:uncompressed",
])
def test_pull_every_testbed_image(registry, root, tag):
    reference = f"{registry.address}/{tag}"
    result = run_minict(["pull", "--image", reference], root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{reference}\n"
    assert list_images(root) == [reference]
    record = image_record(root, reference)
    if "platforms" in registry.summary[tag]:
        assert record["index_digest"] == registry.digest(tag)
        assert record["digest"] == registry.platform_digest(tag, "linux/amd64")
    else:
        assert record["digest"] == registry.digest(tag)
    assert record["platform"] == "linux/amd64"
    assert os.listdir(os.path.join(root, "ingest")) == []
    assert [n for n in os.listdir(os.path.join(root, "snapshots")) if n.startswith(".")] == []


def test_pull_list_images_output_format(registry, root):
    for tag in ("busybox:latest", "alpine:3.20"):
        assert run_minict(["pull", "-q", f"{registry.address}/{tag}"], root).returncode == 0
    result = run_minict(["list-images"], root)
    assert result.stdout == f'[\n\t"{registry.address}/alpine:3.20",\n\t"{registry.address}/busybox:latest"\n]\n'


@pytest.mark.parametrize("tag", ["alpine-multi:3.20.3", "alpine-multi:3.20.3-v2s2"])
def test_pull_platform_choice(registry, root, tag):
    reference = f"{registry.address}/{tag}"
    result = run_minict(["pull", "-q", "--platform", "linux/arm64", reference], root)
    assert result.returncode == 0, result.stderr
    arm_digest = registry.platform_digest(tag, "linux/arm64/v8")
    assert result.stdout == f"{reference}@{arm_digest}\n"
    record = image_record(root, reference)
    assert record["digest"] == arm_digest
    assert record["platform"] == "linux/arm64/v8"
    result = run_minict(["pull", "-q", reference], root)
    assert result.stdout == f"{reference}@{registry.platform_digest(tag, 'linux/amd64')}\n"


def test_pull_unknown_platform_lists_available(registry, root):
    result = run_minict(["pull", "--platform", "linux/s390x", f"{registry.address}/alpine-multi:3.20.3"], root)
    assert result.returncode == 1
    assert "has no image for linux/s390x; available platforms: linux/amd64, linux/arm64/v8" in result.stderr
    assert "Traceback" not in result.stderr
    assert list_images(root) == []


def test_pull_by_digest(registry, root):
    digest = registry.digest("busybox:latest")
    reference = f"{registry.address}/busybox@{digest}"
    result = run_minict(["pull", reference], root)
    assert result.returncode == 0, result.stderr
    assert list_images(root) == [reference]


def test_pull_twice_downloads_nothing(registry, root):
    reference = f"{registry.address}/layers:latest"
    first = run_minict(["pull", reference], root)
    assert first.returncode == 0, first.stderr
    blobs = os.path.join(root, "blobs", "sha256")
    before = {name: os.stat(os.path.join(blobs, name)).st_mtime_ns for name in os.listdir(blobs)}
    second = run_minict(["pull", reference], root)
    assert second.returncode == 0, second.stderr
    assert "Downloading" not in second.stderr
    assert second.stderr.count("Already exists") == 7
    after = {name: os.stat(os.path.join(blobs, name)).st_mtime_ns for name in os.listdir(blobs)}
    assert after == before


def test_pull_other_compressions_reuse_snapshots(registry, root):
    assert run_minict(["pull", f"{registry.address}/layers:latest"], root).returncode == 0
    snapshots = sorted(os.listdir(os.path.join(root, "snapshots")))
    assert len(snapshots) == 7
    for tag in ("layers:zstd", "layers:uncompressed"):
        result = run_minict(["pull", f"{registry.address}/{tag}"], root)
        assert result.returncode == 0, result.stderr
        assert "Extracting" not in result.stderr
        assert sorted(os.listdir(os.path.join(root, "snapshots"))) == snapshots
    chains = [[layer["chain_id"] for layer in image_record(root, f"{registry.address}/{tag}")["layers"]]
              for tag in ("layers:latest", "layers:zstd", "layers:uncompressed")]
    assert chains[0] == chains[1] == chains[2]


def merged_tree(root: str, reference: str) -> dict:
    """Mount the image's snapshots as overlayfs in a private mount namespace and describe every path."""
    record = image_record(root, reference)
    # overlayfs needs two lowerdirs when it has no upperdir, so an empty one goes at the bottom.
    empty = os.path.join(root, "empty-lower")
    os.makedirs(empty, exist_ok=True)
    lower = ":".join([os.path.join(root, "snapshots", layer["chain_id"].split(":")[1], "fs")
                      for layer in reversed(record["layers"])] + [empty])
    script = r"""
import hashlib, json, os, stat, sys
from minict.linux import syscalls
syscalls.unshare(syscalls.CLONE_NEWNS)
syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
target = sys.argv[2]
syscalls.mount("overlay", target, "overlay", syscalls.MS_RDONLY, "lowerdir=" + sys.argv[1])
tree = {}
for directory, dirs, files in os.walk(target):
    for name in dirs + files:
        path = os.path.join(directory, name)
        info = os.lstat(path)
        item = {"mode": oct(info.st_mode), "uid": info.st_uid, "gid": info.st_gid, "nlink": info.st_nlink,
                "ino": info.st_ino}
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb") as file:
                item["data"] = file.read().decode("latin-1") if info.st_size < 200 else hashlib.sha256(file.read()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            item["target"] = os.readlink(path)
        tree[os.path.relpath(path, target)] = item
print(json.dumps(tree))
"""
    target = os.path.join(root, "merged-check")
    os.makedirs(target, exist_ok=True)
    result = subprocess.run([sys.executable, "-c", script, lower, target], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_pull_layers_tree_matches_expected(registry, root):
    reference = f"{registry.address}/layers:latest"
    assert run_minict(["pull", reference], root).returncode == 0
    tree = merged_tree(root, reference)
    data = {path[len("data/"):]: item for path, item in tree.items() if path.startswith("data/")}
    assert "delete-me.txt" not in data
    assert not any(path == "delete-dir" or path.startswith("delete-dir/") for path in data)
    assert [p for p in data if p.startswith("opaque/")] == ["opaque/new.txt"]
    assert data["dir2file"]["mode"] == oct(0o100644)
    assert data["dir2file"]["data"] == "now a file\n"
    assert data["file2dir"]["mode"] == oct(0o40755)
    assert "file2dir/inner.txt" in data
    assert data["keep.txt"]["mode"] == oct(0o100644)
    assert data["empty-file"]["data"] == ""
    assert data["perm/run.sh"]["mode"] == oct(0o100755)
    assert data["perm/private"]["mode"] == oct(0o100600)
    assert (data["perm/private"]["uid"], data["perm/private"]["gid"]) == (1000, 1000)
    assert data["perm/setuid"]["mode"] == oct(0o104755)
    assert data["links/hard.txt"]["ino"] == data["links/target.txt"]["ino"]
    assert data["links/hard.txt"]["nlink"] == 2
    assert data["links/rel"]["target"] == "target.txt"
    assert data["links/abs"]["target"] == "/data/links/target.txt"
    assert data["links/dangling"]["target"] == "/nonexistent/target"
    assert data["links/dirlink"]["target"] == "../opaque"
    assert data["special/fifo"]["mode"] == oct(0o10644)
    assert data["special/name with spaces.txt"]["mode"] == oct(0o100644)
    long_names = [p for p in data if p.startswith("special/") and len(os.path.basename(p)) == 118]
    assert len(long_names) == 1
    assert any(len(p) > 200 for p in data)
    assert data["special/longlink"]["target"].startswith("/data/special/")
    home = tree["home/app"]
    assert (home["uid"], home["gid"]) == (1000, 1000)
    applets = [item for path, item in tree.items() if path.startswith("bin/") and "data" in item]
    assert len({item["ino"] for item in applets}) == 1
    assert tree["bin/["]["nlink"] == 269


def test_pull_layers_whiteouts_in_overlay_form(registry, root):
    reference = f"{registry.address}/layers:latest"
    assert run_minict(["pull", reference], root).returncode == 0
    record = image_record(root, reference)
    fs = [os.path.join(root, "snapshots", layer["chain_id"].split(":")[1], "fs") for layer in record["layers"]]
    for path in (os.path.join(fs[3], "data/delete-me.txt"), os.path.join(fs[3], "data/delete-dir")):
        info = os.lstat(path)
        assert stat.S_ISCHR(info.st_mode)
        assert info.st_rdev == 0
    assert os.getxattr(os.path.join(fs[4], "data/opaque"), "trusted.overlay.opaque") == b"y"
    assert os.getxattr(os.path.join(fs[5], "data/file2dir"), "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(os.path.join(fs[4], "data/opaque"))) == ["new.txt"]
    for layer in fs:
        for directory, dirs, files in os.walk(layer):
            assert not [name for name in dirs + files if name.startswith(".wh.")]


def test_pull_alpine_os_release(registry, root):
    reference = f"{registry.address}/alpine:3.20.3"
    assert run_minict(["pull", reference], root).returncode == 0
    tree = merged_tree(root, reference)
    assert 'VERSION_ID=3.20.3' in tree["etc/os-release"]["data"]
    assert tree["bin/busybox"]["mode"] == oct(0o100755)
    assert tree["bin/sh"]["target"] == "/bin/busybox"


def test_pull_native_snapshotter(registry, root):
    reference = f"{registry.address}/layers:latest"
    result = run_minict(["pull", reference], root, env={"MINICT_SNAPSHOTTER": "native"})
    assert result.returncode == 0, result.stderr
    info = json.loads(run_minict(["info"], root).stdout)
    assert info["snapshotter"] == "native"
    record = image_record(root, reference)
    top = os.path.join(root, "snapshots", record["layers"][-1]["chain_id"].split(":")[1], "fs")
    assert sorted(os.listdir(os.path.join(top, "data"))) == [
        "dir2file", "empty-file", "file2dir", "keep.txt", "links", "opaque", "perm", "special"]
    assert os.listdir(os.path.join(top, "data/opaque")) == ["new.txt"]
    with open(os.path.join(top, "data/dir2file")) as file:
        assert file.read() == "now a file\n"
    assert os.lstat(os.path.join(top, "data/links/hard.txt")).st_ino == os.lstat(os.path.join(top, "data/links/target.txt")).st_ino


def test_rmi_collects_unused_content(registry, root):
    for tag in ("layers:latest", "busybox:latest"):
        assert run_minict(["pull", "-q", f"{registry.address}/{tag}"], root).returncode == 0
    result = run_minict(["rmi", f"{registry.address}/layers:latest"], root)
    assert result.returncode == 0, result.stderr
    assert list_images(root) == [f"{registry.address}/busybox:latest"]
    assert len(os.listdir(os.path.join(root, "snapshots"))) == 1
    busybox = image_record(root, f"{registry.address}/busybox:latest")
    expected = {busybox["digest"], busybox["config"]["digest"], busybox["layers"][0]["digest"]}
    assert {f"sha256:{n}" for n in os.listdir(os.path.join(root, "blobs", "sha256"))} == expected
    result = run_minict(["rmi", f"{registry.address}/layers:latest"], root)
    assert result.returncode == 1
    assert "not found" in result.stderr


@pytest.mark.parametrize("text, fragment", [
    ("Alpine", "repository name must be lowercase"),
    ("alpine:bad tag", "white space"),
    ("alpine@sha256:123", "64 lower-case hex digits"),
])
def test_pull_invalid_reference(root, text, fragment):
    result = run_minict(["pull", "--image", text], root)
    assert result.returncode == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pull_unknown_tag(registry, root):
    result = run_minict(["pull", f"{registry.address}/alpine:9.9"], root)
    assert result.returncode == 1
    assert f"manifest {registry.address}/alpine:9.9 not found" in result.stderr


def test_pull_unreachable_registry(root):
    result = run_minict(["pull", "127.0.0.1:9/alpine"], root)
    assert result.returncode == 1
    assert "cannot reach registry 127.0.0.1:9" in result.stderr


def test_pull_schema1_rejected(root):
    body = json.dumps({"schemaVersion": 1, "name": "old", "tag": "1", "fsLayers": []}).encode()
    server = ScriptedServer(lambda request: (
        200, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}, body)
        if "/manifests/" in request["path"] else (200, {}, b"{}"))
    try:
        result = run_minict(["pull", f"{server.address}/old:1"], root)
    finally:
        server.close()
    assert result.returncode == 1
    assert "schema 1 manifest, which is deprecated and not supported" in result.stderr


def test_pull_killed_then_repeated(registry, root):
    """SIGKILL while a layer streams through a slow proxy; the next pull resumes and finishes."""
    import requests

    upstream = f"http://{registry.address}"

    def slow_proxy(request):
        response = requests.get(upstream + request["path"], headers={
            k: v for k, v in request["headers"].items() if k.lower() in ("accept", "range")}, stream=True)
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() in ("content-type", "content-length", "docker-content-digest", "content-range")}

        def body():
            for chunk in response.iter_content(16384):
                if "/blobs/" in request["path"]:
                    time.sleep(0.02)
                yield chunk
        return response.status_code, headers, body()

    server = ScriptedServer(slow_proxy)
    try:
        env = dict(os.environ, MINICT_DIR=root)
        process = subprocess.Popen([sys.executable, "-m", "minict", "pull", f"{server.address}/alpine:3.20.3"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ingest = os.path.join(root, "ingest")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partial = [n for n in os.listdir(ingest) if n.endswith(".partial")] if os.path.isdir(ingest) else []
            if partial and os.path.getsize(os.path.join(ingest, partial[0])) > 500_000:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the pull never started downloading")
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        server.close()
    assert list_images(root) == []
    assert any(n.startswith(".tmp-") for n in os.listdir(os.path.join(root, "snapshots")))
    result = run_minict(["pull", f"{registry.address}/alpine:3.20.3"], root, env={"MINICT_LOG_LEVEL": "info"})
    assert result.returncode == 0, result.stderr
    assert list_images(root) == [f"{registry.address}/alpine:3.20.3"]
    assert os.listdir(os.path.join(root, "ingest")) == []
    assert [n for n in os.listdir(os.path.join(root, "snapshots")) if n.startswith(".")] == []
