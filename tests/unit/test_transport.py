"""minict.registry.transport against small HTTP servers on loopback."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minict.registry.transport import (InvalidProxy, Transport, TransportError, TooManyRedirects, UnsupportedURL,
                                       _proxy_for)


class Server:
    """An HTTP/1.1 server on 127.0.0.1 whose responses come from `respond(handler)`. It records each request."""

    def __init__(self, respond, host: str = "127.0.0.1"):
        self.requests: list[dict] = []
        self.ports: set[int] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                server.ports.add(self.client_address[1])
                respond(self)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None):
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def transport() -> Transport:
    return Transport(lambda: pytest.fail("no HTTPS expected"), connect_timeout=5, read_timeout=5)


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_connection_is_kept_alive(no_proxy_env):
    server = Server(lambda h: send(h, 200, b"hello"))
    try:
        client = transport()
        for _ in range(3):
            response = client.request("GET", f"http://{server.address}/v2/", {})
            assert (response.status_code, response.read(100)) == (200, b"hello")
            response.close()
    finally:
        server.close()
    assert len(server.requests) == 3
    assert len(server.ports) == 1


def test_idle_connection_reopened(no_proxy_env):
    def respond(handler):
        send(handler, 200, b"x")
        handler.close_connection = True  # closes after the response without a Connection: close header

    server = Server(respond)
    try:
        client = transport()
        for _ in range(2):
            response = client.request("GET", f"http://{server.address}/", {})
            assert response.read(10) == b"x"
            response.close()
    finally:
        server.close()
    assert len(server.requests) == 2
    assert len(server.ports) == 2


def test_short_body_partial_then_error(no_proxy_env):
    def respond(handler):
        send(handler, 200, b"abc", length=10)
        handler.close_connection = True

    server = Server(respond)
    try:
        response = transport().request("GET", f"http://{server.address}/blob", {})
        assert response.read(100) == b"abc"
        with pytest.raises(TransportError, match="IncompleteRead: the connection closed with 7 bytes"):
            response.read(100)
        response.close()
    finally:
        server.close()


def test_redirect_drops_authorization(no_proxy_env):
    storage = Server(lambda h: send(h, 200, b"blob"), host="127.0.0.2")
    registry = Server(lambda h: send(h, 307, headers={"Location": f"http://{storage.address}/data?sig=1"})
                      if h.path.startswith("/v2/") else send(h, 200, b"same host"))
    try:
        client = transport()
        response = client.request("GET", f"http://{registry.address}/v2/app/blobs/x",
                                  {"Authorization": "Bearer secret", "Range": "bytes=5-"})
        assert response.read(10) == b"blob"
        response.close()
    finally:
        registry.close()
        storage.close()
    assert registry.requests[0]["headers"]["Authorization"] == "Bearer secret"
    assert storage.requests[0]["path"] == "/data?sig=1"
    assert "Authorization" not in storage.requests[0]["headers"]
    assert storage.requests[0]["headers"]["Range"] == "bytes=5-"


def test_redirect_loop_stops(no_proxy_env):
    server = Server(lambda h: send(h, 302, headers={"Location": "/again"}))
    try:
        with pytest.raises(TooManyRedirects, match="more than 10 redirects"):
            transport().request("GET", f"http://{server.address}/", {})
    finally:
        server.close()
    assert len(server.requests) == 11


def test_refused_connection_error(no_proxy_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(TransportError, match="ConnectionRefusedError"):
            transport().request("GET", f"http://127.0.0.1:{port}/", {})


def test_plain_http_proxy_credentials(monkeypatch, no_proxy_env):
    proxy = Server(lambda h: send(h, 200, b"via proxy"))
    try:
        monkeypatch.setenv("http_proxy", f"http://user:p%40ss@{proxy.address}")
        response = transport().request("GET", "http://registry.example/v2/", {})
        assert response.read(20) == b"via proxy"
        response.close()
    finally:
        proxy.close()
    assert proxy.requests[0]["path"] == "http://registry.example/v2/"
    assert proxy.requests[0]["headers"]["Host"] == "registry.example"
    assert proxy.requests[0]["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


@pytest.mark.parametrize("scheme, host, environment, expected", [
    ("https", "registry.example", {"https_proxy": "proxy:3128"}, "http://proxy:3128"),
    ("https", "registry.example", {"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128"),
    ("http", "registry.example", {"https_proxy": "http://proxy:3128"}, None),
    ("https", "registry.example", {"https_proxy": "http://proxy:3128", "no_proxy": "example"}, None),
    ("https", "registry.example", {"https_proxy": "http://proxy:3128", "no_proxy": ".example"}, None),
    ("https", "registry.example", {"https_proxy": "http://proxy:3128", "NO_PROXY": "other.example, *"}, None),
    ("https", "registry.example", {"https_proxy": "http://proxy:3128", "no_proxy": "ample"}, "http://proxy:3128"),
    ("https", "127.0.0.1", {"https_proxy": "http://proxy:3128"}, None),
    ("https", "localhost", {"https_proxy": "http://proxy:3128"}, None),
])
def test_proxy_choice(monkeypatch, no_proxy_env, scheme, host, environment, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _proxy_for(scheme, host) == expected


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a certificate for registry.example, and that certificate's path."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=registry.example", "-addext", "subjectAltName=DNS:registry.example,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = Server(lambda h: send(h, 200, b"over tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    yield server, str(cert)
    server.close()


class ConnectProxy:
    """A proxy on 127.0.0.1 that joins a CONNECT client to `target_port`. It records each request."""

    def __init__(self, target_port: int):
        self.requests: list[str] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        client, _ = self.listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        self.requests.append(head.decode())
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            target.close()


def test_https_connect_tunnel(monkeypatch, no_proxy_env, tls_server):
    import ssl

    server, cert = tls_server
    port = server.httpd.server_address[1]
    proxy = ConnectProxy(port)
    monkeypatch.setenv("https_proxy", f"http://user:secret@127.0.0.1:{proxy.port}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=cert)
    transport = Transport(lambda: context, connect_timeout=5, read_timeout=5)
    response = transport.request("GET", f"https://registry.example:{port}/v2/", {})
    assert response.status_code == 200
    assert response.read(100) == b"over tls"
    response.close()
    request_line, *headers = proxy.requests[0].split("\r\n")
    assert request_line == f"CONNECT registry.example:{port} HTTP/1.0"
    assert "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in headers  # user:secret
    assert server.requests[0]["headers"]["Host"] == f"registry.example:{port}"


def test_system_cas_lazy_directory(monkeypatch, no_proxy_env, tls_server, tmp_path):
    import shutil
    import ssl
    import subprocess

    from minict.registry.client import trust_system_cas

    server, cert = tls_server
    port = server.httpd.server_address[1]
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", cert], check=True,
                                  capture_output=True, text=True).stdout.strip()
    directory = tmp_path / "certs"
    directory.mkdir()
    shutil.copy(cert, directory / f"{subject_hash}.0")
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trust_system_cas(context)
    assert context.cert_store_stats()["x509_ca"] == 0  # nothing parsed yet
    response = Transport(lambda: context, connect_timeout=5, read_timeout=5).request(
        "GET", f"https://localhost:{port}/v2/", {})
    assert response.read(100) == b"over tls"
    response.close()

    monkeypatch.setenv("SSL_CERT_FILE", cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trust_system_cas(context)
    assert context.cert_store_stats()["x509_ca"] == 1  # the named bundle, parsed now


def test_redirect_other_scheme_stops(no_proxy_env):
    server = Server(lambda h: send(h, 302, headers={"Location": "file:///etc/passwd"}))
    try:
        with pytest.raises(UnsupportedURL, match="only http and https URLs are supported"):
            transport().request("GET", f"http://{server.address}/v2/", {})
    finally:
        server.close()
    assert len(server.requests) == 1


@pytest.mark.parametrize("proxy", ["http://127.0.0.1:notaport", "https://proxy.example:3128", "http://"])
def test_invalid_proxy_rejected(monkeypatch, no_proxy_env, proxy):
    monkeypatch.setenv("http_proxy", proxy)
    with pytest.raises(InvalidProxy, match="in http_proxy: use http://"):
        transport().request("GET", "http://registry.example/v2/", {})


def test_unreachable_proxy_named(monkeypatch, no_proxy_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
        with pytest.raises(TransportError, match=f"proxy http://127.0.0.1:{port} \\(from http_proxy\\): "
                                                 "ConnectionRefusedError"):
            transport().request("GET", "http://registry.example/v2/", {})
