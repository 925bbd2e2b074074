"""Authentication: the testbed's TLS registry with basic auth, and a scripted token server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest

from tests.helpers import ScriptedServer, run_minict, tar_bytes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pulls unpack as root: run the suite as root")


def test_tls_registry_needs_login(tls_registry, root):
    cert_dir = tls_registry.env["TESTBED_REGISTRY_CERT_DIR"]
    reference = f"{tls_registry.address}/alpine:3.20.3"
    result = run_minict(["pull", "--cert-dir", cert_dir, reference], root)
    assert result.returncode == 1
    assert f"registry {tls_registry.address} requires authentication; run: minict login {tls_registry.address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_tls_registry_untrusted_certificate(tls_registry, root):
    result = run_minict(["pull", f"{tls_registry.address}/alpine:3.20.3"], root)
    assert result.returncode == 1
    assert f"the TLS certificate of registry {tls_registry.address} is not trusted" in result.stderr
    assert "--cert-dir" in result.stderr


def test_tls_registry_login_pull_logout(tls_registry, root):
    cert_dir = tls_registry.env["TESTBED_REGISTRY_CERT_DIR"]
    address = tls_registry.address
    wrong = run_minict(["login", "--cert-dir", cert_dir, "-u", "tester", "--password-stdin", address], root,
                       input="wrong\n")
    assert wrong.returncode == 1
    assert f"registry {address} rejected the credentials of tester" in wrong.stderr
    assert not os.path.exists(os.path.join(root, "auth.json"))

    login = run_minict(["login", "--cert-dir", cert_dir, "-u", "tester", "--password-stdin", address], root,
                       input="secret\n")
    assert login.returncode == 0, login.stderr
    assert login.stdout == "Login Succeeded\n"
    auth_file = os.path.join(root, "auth.json")
    assert oct(os.stat(auth_file).st_mode & 0o777) == oct(0o600)
    with open(auth_file) as file:
        assert list(json.load(file)["auths"]) == [address]

    reference = f"{address}/alpine:3.20.3"
    pull = run_minict(["pull", "--cert-dir", cert_dir, reference], root)
    assert pull.returncode == 0, pull.stderr
    assert json.loads(run_minict(["list-images"], root).stdout) == [reference]

    logout = run_minict(["logout", address], root)
    assert logout.returncode == 0
    again = run_minict(["pull", "--cert-dir", cert_dir, f"{address}/alpine:3.18"], root)
    assert again.returncode == 1
    assert "requires authentication" in again.stderr


def test_tls_registry_docker_config_credentials(tls_registry, root, tmp_path):
    import base64

    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    token = base64.b64encode(b"tester:secret").decode()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {tls_registry.address: {"auth": token}}}))
    result = run_minict(["pull", "--cert-dir", tls_registry.env["TESTBED_REGISTRY_CERT_DIR"],
                         f"{tls_registry.address}/alpine:3.20.3"], root, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr


class TokenRegistry:
    """A registry on 127.0.0.1 with a bearer token endpoint, serving one image whose
    layer blob redirects to a second host (127.0.0.2), as registries do with object storage."""

    def __init__(self, token_field: str = "token", throttle: list | None = None):
        self.layer_tar = tar_bytes([{"name": "hello.txt", "data": b"hello\n"}])
        self.layer = gzip.compress(self.layer_tar)
        self.layer_digest = "sha256:" + hashlib.sha256(self.layer).hexdigest()
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(self.layer_tar).hexdigest()]},
        }).encode()
        self.config = config
        self.config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.config_digest,
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": self.layer_digest,
                        "size": len(self.layer)}],
        }).encode()
        self.token_field = token_field
        self.throttle = throttle if throttle is not None else []
        self.blob_host = ScriptedServer(self.serve_blob_host, host="127.0.0.2")
        self.registry = ScriptedServer(self.serve)
        self.address = self.registry.address

    def serve_blob_host(self, request):
        if request["path"] == "/layer":
            return 200, {}, self.layer
        return 404, {}, b""

    def serve(self, request):
        path = request["path"]
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, json.dumps({self.token_field: "T0K", "expires_in": 300}).encode()
        if self.throttle:
            status = self.throttle.pop(0)
            return status, {"Retry-After": "1"}, b""
        if request["headers"].get("Authorization") != "Bearer T0K":
            realm = f"http://{self.address}/token"
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="test",scope="repository:app:pull"'}, b""
        if path == "/v2/":
            return 200, {}, b"{}"
        if path.startswith("/v2/app/manifests/"):
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, self.manifest
        if path == f"/v2/app/blobs/{self.config_digest}":
            return 200, {}, self.config
        if path == f"/v2/app/blobs/{self.layer_digest}":
            return 307, {"Location": f"http://{self.blob_host.address}/layer"}, b""
        return 404, {}, b""

    def close(self):
        self.registry.close()
        self.blob_host.close()


@pytest.mark.parametrize("token_field", ["token", "access_token"])
def test_bearer_token_and_redirect_without_authorization(root, token_field):
    server = TokenRegistry(token_field)
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    token_requests = [r for r in server.registry.requests if r["path"].startswith("/token")]
    assert len(token_requests) == 1
    assert "scope=repository%3Aapp%3Apull" in token_requests[0]["path"]
    blob_requests = server.blob_host.requests
    assert len(blob_requests) == 1
    assert "Authorization" not in blob_requests[0]["headers"]
    authorized = [r for r in server.registry.requests if r["headers"].get("Authorization") == "Bearer T0K"]
    assert len(authorized) >= 3


def test_retry_after_on_429(root):
    server = TokenRegistry(throttle=[429, 503])
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("returned 429; retrying in 1.0 s") == 1
    assert result.stderr.count("returned 503; retrying in 1.0 s") == 1


class FaultyRegistry(TokenRegistry):
    """The token registry, with the layer blob served wrong in a chosen way."""

    def __init__(self, fault: str):
        super().__init__()
        self.fault = fault
        self.layer_requests = 0

    def serve_blob_host(self, request):
        self.layer_requests += 1
        layer = self.layer
        if self.fault == "corrupt":
            # The gzip header's mtime is not covered by gzip's checksum, so
            # this still decompresses and only the digest can catch it.
            return 200, {}, layer[:4] + b"\x01\x02\x03\x04" + layer[8:]
        if self.fault == "bad-gzip":
            return 200, {}, layer[:-8] + b"\0" * 8
        if self.fault == "long":
            return 200, {}, layer + b"extra"
        if self.fault == "short":
            return 200, {}, layer[:-10]
        if self.fault == "drop-then-ignore-range" and self.layer_requests == 1:
            return 200, {"Content-Length": str(len(layer))}, [layer[: len(layer) // 2], None]
        return 200, {}, layer


@pytest.mark.parametrize("fault, message", [
    ("corrupt", "content hashes to sha256:"),
    ("long", "received more than the"),
    ("short", "but its descriptor declares"),
    ("bad-gzip", "corrupt gzip data"),
])
def test_pull_rejects_wrong_blob(root, fault, message):
    server = FaultyRegistry(fault)
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root)
    finally:
        server.close()
    assert result.returncode == 1
    assert message in result.stderr
    assert server.layer_digest in result.stderr
    assert json.loads(run_minict(["list-images"], root).stdout) == []
    assert os.listdir(os.path.join(root, "ingest")) == []
    assert not os.path.exists(os.path.join(root, "blobs", "sha256", server.layer_digest.split(":")[1]))
    assert [n for n in os.listdir(os.path.join(root, "snapshots")) if n.startswith(".")] == []


def test_pull_resumes_when_range_ignored(root):
    server = FaultyRegistry("drop-then-ignore-range")
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert "download interrupted at" in result.stderr
    assert "ignored the Range request" in result.stderr or server.layer_requests == 2
    assert server.blob_host.requests[1]["headers"].get("Range", "").startswith("bytes=")
    assert json.loads(run_minict(["list-images"], root).stdout) == [f"{server.address}/app:1"]


def test_pull_rejects_wrong_diff_id(root):
    server = TokenRegistry()
    config = json.loads(server.config)
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    server.config = json.dumps(config).encode()
    server.config_digest = "sha256:" + hashlib.sha256(server.config).hexdigest()
    manifest = json.loads(server.manifest)
    manifest["config"].update(digest=server.config_digest, size=len(server.config))
    server.manifest = json.dumps(manifest).encode()
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root)
    finally:
        server.close()
    assert result.returncode == 1
    assert "uncompressed content: content hashes to" in result.stderr
    assert "(the config's diff_id)" in result.stderr
    assert json.loads(run_minict(["list-images"], root).stdout) == []
    assert [n for n in os.listdir(os.path.join(root, "snapshots")) if not n.startswith("x")] == []


class HostileRegistry(TokenRegistry):
    """The token registry, misbehaving in a chosen way."""

    def __init__(self, fault: str):
        self.fault = fault
        self.stalls = 2
        self.token_requests: list[dict] = []
        super().__init__()
        if fault == "foreign-realm":
            self.token_host = ScriptedServer(self.serve_token, host="127.0.0.2")

    def serve_token(self, request):
        self.token_requests.append(request)
        return 200, {"Content-Type": "application/json"}, json.dumps({"token": "T0K"}).encode()

    def serve(self, request):
        path = request["path"]
        if self.fault == "huge-token" and path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "' + b"t" * (2 << 20) + b'"}'
        if self.fault == "endless-401" and path.startswith("/v2/app/"):
            realm = f"http://{self.address}/token"
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="test",scope="repository:app:pull"'}, b""
        if self.fault == "foreign-realm" and not path.startswith("/token") and \
                request["headers"].get("Authorization") != "Bearer T0K":
            realm = f"http://{self.token_host.address}/token"
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'}, b""
        if self.fault == "redirect-loop" and path == f"/v2/app/blobs/{self.layer_digest}":
            return 307, {"Location": path}, b""
        if self.fault == "redirect-to-file" and path == f"/v2/app/blobs/{self.layer_digest}":
            return 307, {"Location": "file:///etc/passwd"}, b""
        if self.fault == "huge-manifest" and path.startswith("/v2/app/manifests/"):
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, b" " * (5 << 20)
        if self.fault == "stall" and path.startswith("/v2/app/manifests/") and self.stalls:
            self.stalls -= 1
            import time

            time.sleep(3)
        return super().serve(request)

    def close(self):
        super().close()
        if self.fault == "foreign-realm":
            self.token_host.close()


@pytest.mark.parametrize("fault, message", [
    ("endless-401", "requires authentication for app; run: minict login"),
    ("redirect-loop", "too many redirects"),
    ("redirect-to-file", "to an unusable URL: cannot fetch 'file:///etc/passwd'"),
    ("huge-manifest", "over the 4194304-byte limit"),
    ("huge-token", "larger than 1048576 bytes"),
])
def test_hostile_registry_answers_end_in_clear_errors(root, fault, message):
    server = HostileRegistry(fault)
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root, timeout=60)
    finally:
        server.close()
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(server.registry.requests) < 40  # bounded: no endless loop
    assert json.loads(run_minict(["list-images"], root).stdout) == []


def test_stalled_registry_times_out_and_is_retried(root):
    server = HostileRegistry("stall")
    try:
        result = run_minict(["pull", f"{server.address}/app:1"], root, env={"MINICT_REGISTRY_TIMEOUT": "1"},
                            timeout=60)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("retrying") >= 2
    result = run_minict(["pull", f"{server.address}/app:1"], root, env={"MINICT_REGISTRY_TIMEOUT": "soon"})
    assert result.returncode == 1
    assert "invalid MINICT_REGISTRY_TIMEOUT 'soon'" in result.stderr


def test_credentials_stay_with_their_host(root, tmp_path):
    """Saved credentials for the registry are not sent to a token realm on another host over plain HTTP."""
    server = HostileRegistry("foreign-realm")
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {server.address: {"auth": "dXNlcjpzZWNyZXQ="}}}))  # user:secret
    try:
        result = run_minict(["pull", "--authfile", str(authfile), f"{server.address}/app:1"], root, timeout=60)
    finally:
        server.close()
    assert server.token_requests, result.stderr
    assert all("Authorization" not in request["headers"] for request in server.token_requests)
    assert result.returncode == 0, result.stderr
