"""Test helpers: a scriptable HTTP server on loopback, layer tar builders, CLI runner."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTBED = os.environ.get("MINICT_TESTBED") or os.path.join(os.path.dirname(REPO), "shared", "testbed")


class ScriptedServer:
    """An HTTP server on 127.0.0.1 whose responses come from a handler function.

    handler(request) returns (status, headers, body) where body is bytes or an
    iterable of bytes, in which None drops the connection; every request is
    recorded in `requests`. Used only for
    registry behaviour the real Distribution registry cannot be made to show
    (redirects to other hosts, 429 storms, ignored Range headers, stalls).
    """

    def __init__(self, handler, host: str = "127.0.0.1"):
        self.handler = handler
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers), "host": host}
                server.requests.append(request)
                status, headers, body = server.handler(request)
                self.send_response(status)
                chunks = [body] if isinstance(body, (bytes, bytearray)) else body
                if isinstance(body, (bytes, bytearray)) and "Content-Length" not in headers:
                    headers = dict(headers, **{"Content-Length": str(len(body))})
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    for chunk in chunks:
                        if chunk is None:
                            # None in a body: drop the connection here, mid-response.
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_HEAD = _serve

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.address = f"{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tar_bytes(entries: list[dict]) -> bytes:
    """Build a PAX tar from dicts: name, type (file, dir, symlink, hardlink, fifo, chr), data, mode, uid, gid, linkname, pax."""
    types = {
        "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry["name"])
            info.type = types[entry.get("type", "file")]
            data = entry.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            info.mode = entry.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
            info.uid = entry.get("uid", 0)
            info.gid = entry.get("gid", 0)
            info.mtime = entry.get("mtime", 1_000_000)
            info.linkname = entry.get("linkname", "")
            info.devmajor, info.devminor = entry.get("device", (0, 0))
            if "pax" in entry:
                info.pax_headers = entry["pax"]
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buffer.getvalue()


def run_minict(args: list[str], root: str, input: str | None = None, env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    environment = dict(os.environ, MINICT_DIR=root)
    environment.pop("REGISTRY_AUTH_FILE", None)
    if env:
        environment.update(env)
    return subprocess.run([sys.executable, "-m", "minict", *args], capture_output=True, text=True,
                          input=input, env=environment, timeout=timeout)
