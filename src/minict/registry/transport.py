"""HTTP/1.1 for the registry client, on the standard library's http.client.

requests was the first transport. With urllib3 under it, it took 98 ms to
import here, against 27 ms for http.client, in a pull of alpine:3.20.3 that
took 281 ms in all. The client needs few of its features, and this module
adds those to http.client:

- one kept-alive connection per host in each thread, opened again when the
  server has closed it while idle;
- redirects, at most 10, with Authorization dropped when the host changes;
- proxies from https_proxy, http_proxy and no_proxy, except for loopback
  hosts (Go's rule, so minict agrees with podman and skopeo);
- a connect timeout and a read timeout;
- bodies checked against Content-Length, which http.client does not do.

Every failure below HTTP (connection, TLS, timeout, a broken body) is a
TransportError, so callers need not know http.client's exceptions.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import os
import ssl
from urllib.parse import unquote, urljoin, urlsplit

MAX_REDIRECTS = 10
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}


class TransportError(Exception):
    """A failure below HTTP in a request or a body read: connection, TLS, timeout or a broken response."""


class TLSError(TransportError):
    """A failed TLS handshake. `certificate` is True when the server's certificate was not trusted."""

    def __init__(self, message: str, certificate: bool):
        super().__init__(message)
        self.certificate = certificate


class TooManyRedirects(TransportError):
    pass


class UnsupportedURL(TransportError):
    """A URL (or a redirect's Location) that is not http or https, or has an invalid port. The client does not retry it."""


class InvalidProxy(TransportError):
    """A proxy setting of the environment that is not an http:// URL with a host and a valid port. The client does not retry it."""


class Response:
    """A response whose body is read in pieces with read(). close() gives its connection back for reuse."""

    def __init__(self, raw: http.client.HTTPResponse, release):
        self.raw = raw
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive get()
        self._release = release

    def read(self, size: int = -1) -> bytes:
        """Read `size` bytes, or fewer at the end of the body, or all of it when `size` is negative.

        Returns b"" at the end. When the connection breaks, the bytes that
        arrived before are returned first, so a resume can start after them.
        The next read then raises.
        """
        data = b""
        try:
            if size < 0:
                return self.raw.read()
            while len(data) < size:
                unread = self.raw.length
                piece = self.raw.read(size - len(data))
                if not piece:
                    if unread and not data:
                        # http.client ends a body shorter than its Content-Length quietly.
                        raise TransportError(f"IncompleteRead: the connection closed with {unread} bytes "
                                             "of the body unread")
                    break
                data += piece
        except (OSError, http.client.HTTPException) as error:
            if data:
                return data
            raise TransportError(_describe(error)) from error
        return data

    def close(self) -> None:
        """Give the connection back for reuse when the body is read or short enough to finish, else close it."""
        if self._release is not None:
            finished = self.raw.isclosed()
            if not finished and self.raw.length is not None and self.raw.length <= 65536:
                try:
                    self.raw.read()
                    finished = self.raw.isclosed()
                except (OSError, http.client.HTTPException):
                    finished = False
            self._release(finished)
            self._release = None
        self.raw.close()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__


def is_loopback(host: str) -> bool:
    """Return True for localhost and loopback addresses, given as host or host:port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _proxy_for(scheme: str, host: str) -> str | None:
    """Return the proxy URL the environment sets for this scheme and host, or None."""
    if is_loopback(host):
        return None
    proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    # NOTE: no_proxy entries match host names and their subdomains only. CIDR
    # ranges and entries with a port, which Go's proxy rules also accept, never match.
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in no_proxy.replace(" ", "").split(","):
        if not entry:
            continue
        if entry == "*":
            return None
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return None
    return proxy if "://" in proxy else "http://" + proxy


class Transport:
    """The connections of one thread. It calls `tls_context` each time it opens an HTTPS connection."""

    def __init__(self, tls_context, connect_timeout: float, read_timeout: float, user_agent: str = "minict"):
        self.tls_context = tls_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def request(self, method: str, url: str, headers: dict) -> Response:
        """Send the request and follow redirects. The caller reads the body and closes the response."""
        headers = dict(headers)
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, headers)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.read(65536)  # a short body lets the connection be reused
            response.close()
            url = urljoin(url, location)
            if urlsplit(url)[:2] != origin:
                # Credentials for the registry must not reach the storage host it redirects to.
                headers.pop("Authorization", None)
            if response.status_code == 303:
                method = "GET"
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects, the last to {url}")

    def _send(self, method: str, url: str, headers: dict) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise UnsupportedURL(f"cannot fetch {url!r}: only http and https URLs are supported")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise UnsupportedURL(f"invalid port in URL {url!r}") from None
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"User-Agent": self.user_agent, **headers}
        connection = self._idle.pop(key, None)
        reused = connection is not None
        try:
            if connection is None:
                connection = self._connect(parts.scheme, parts.hostname, port)
            try:
                raw = self._exchange(connection, method, url, target, headers)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                if not reused:
                    raise
                # The server closed the idle connection; a GET may be sent again on a new one.
                connection.close()
                connection = self._connect(parts.scheme, parts.hostname, port)
                raw = self._exchange(connection, method, url, target, headers)
        except ssl.SSLError as error:
            if connection is not None:
                connection.close()
            raise TLSError(str(error), isinstance(error, ssl.SSLCertVerificationError)) from error
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
            raise TransportError(_describe(error)) from error

        def release(finished: bool) -> None:
            if finished and not raw.will_close:
                self._idle[key] = connection
            else:
                connection.close()

        return Response(raw, release)

    @staticmethod
    def _exchange(connection, method: str, url: str, target: str, headers: dict) -> http.client.HTTPResponse:
        if connection.minict_proxy_headers is not None:
            # A plain-HTTP request goes to the proxy whole, with the absolute URL as its target.
            connection.request(method, url, headers={**headers, **connection.minict_proxy_headers})
        else:
            connection.request(method, target, headers=headers)
        return connection.getresponse()

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        """Open a connection to the host, through a proxy when the environment names one."""
        proxy = _proxy_for(scheme, host)
        context = self.tls_context() if scheme == "https" else None
        proxy_headers = {}
        plain_proxy_headers = None  # set for a plain-HTTP request through a proxy
        if proxy:
            proxy_parts = urlsplit(proxy)
            try:
                proxy_port = proxy_parts.port or 80
            except ValueError:
                proxy_port = None
            if proxy_parts.scheme != "http" or not proxy_parts.hostname or proxy_port is None:
                raise InvalidProxy(f"invalid proxy {proxy!r} in {scheme}_proxy: use http://[USER:PASSWORD@]HOST:PORT")
            proxy_host = proxy_parts.hostname
            if proxy_parts.username:
                credentials = f"{unquote(proxy_parts.username)}:{unquote(proxy_parts.password or '')}"
                proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            if scheme == "https":
                connection = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.connect_timeout,
                                                         context=context)
                connection.set_tunnel(host, port, headers=proxy_headers)
            else:
                connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=self.connect_timeout)
                plain_proxy_headers = proxy_headers
        elif scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            if not proxy or isinstance(error, ssl.SSLError):
                raise
            raise TransportError(f"proxy {proxy} (from {scheme}_proxy): {_describe(error)}") from error
        connection.sock.settimeout(self.read_timeout)
        connection.minict_proxy_headers = plain_proxy_headers
        return connection
