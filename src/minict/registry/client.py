"""A Distribution API v2 client over http.client (see minict.registry.transport).

One RegistryClient talks to one registry. It uses HTTPS, or plain HTTP for
loopback and registries marked insecure. It handles Bearer and Basic
challenges and retries transient failures with backoff. It returns manifests
checked against their digest, and blob streams that the caller checks while
it reads them (see minict.content).
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from urllib.parse import urlencode, urlparse

from minict import digest as digest_module
from minict.digest import parse_digest
from minict.errors import AuthError, ContentError, NotFound, RegistryError
from minict.log import get_logger
from minict.registry import credentials
from minict.registry.challenge import parse_challenges
from minict.registry.transport import (InvalidProxy, Response, TLSError, TooManyRedirects, Transport,
                                       TransportError, UnsupportedURL, is_loopback)

log = get_logger(__name__)

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
# Without an Accept header the Distribution registry converts manifests to
# schema 1, so every manifest request lists the four types minict reads.
MANIFEST_ACCEPT = ", ".join([MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST])

#: Largest manifest or index accepted; containerd uses the same 4 MiB bound.
MAX_MANIFEST_BYTES = 4 << 20
#: Largest token response accepted.
MAX_TOKEN_BYTES = 1 << 20
RETRY_STATUSES = {429, 500, 502, 503, 504}
SYSTEM_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
DOCKER_HUB_API = "registry-1.docker.io"


class ClientOptions:
    """Connection settings shared by the registry clients of one command.

    tls_verify None means verify, but allow plain HTTP on loopback.
    """

    def __init__(self, state_root: str, tls_verify: bool | None = None, cert_dir: str | None = None,
                 authfile: str | None = None, insecure_registries: frozenset[str] = frozenset(),
                 max_attempts: int = 5, connect_timeout: float = 30.0, read_timeout: float = 60.0,
                 max_retry_after: float = 60.0):
        self.state_root = state_root
        self.tls_verify = tls_verify
        self.cert_dir = cert_dir
        self.authfile = authfile
        self.insecure_registries = insecure_registries
        self.max_attempts = max_attempts
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retry_after = max_retry_after


def load_insecure_registries(path: str = "/etc/containers/registries.conf") -> frozenset[str]:
    """Read the registries marked `insecure = true` in containers-registries.conf(5)."""
    path = os.environ.get("CONTAINERS_REGISTRIES_CONF", path)
    try:
        import tomllib

        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: %s", path, error)
        return frozenset()
    hosts = set()
    for entry in data.get("registry", []) or []:
        if isinstance(entry, dict) and entry.get("insecure") is True:
            location = entry.get("location") or entry.get("prefix")
            if isinstance(location, str):
                hosts.add(location.split("/", 1)[0])
    return frozenset(hosts)


def _api_host(domain: str) -> str:
    return DOCKER_HUB_API if domain == "docker.io" else domain


def backoff_delay(attempt: int) -> float:
    """Return the wait in seconds before retry number `attempt` (1-based): 0.25 s, doubling, at most 8 s."""
    return min(0.25 * 2 ** (attempt - 1), 8.0)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ssl_reason(error: Exception) -> str:
    text = str(error)
    start = text.find("certificate verify failed")
    return text[start:].split(")")[0] if start >= 0 else text


def _error_detail(response: Response) -> str:
    """Return the registry's error code and message from a JSON error body, if any."""
    try:
        body = response.read(65536)
        errors = json.loads(body).get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        return "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, TransportError):
        # Not JSON, or a body shorter than its Content-Length (Go servers send
        # a 33-byte text for a 416 with the blob's full length declared).
        return ""


def trust_system_cas(context: ssl.SSLContext) -> None:
    """Make the context trust the system's CAs.

    A bundle file is parsed whole when loaded: about 22 ms for Debian's 140
    CAs. A directory of hashed names (OpenSSL's c_rehash layout, which Debian's
    /etc/ssl/certs has) is read lazily, one certificate when a handshake needs
    it. So the directory is used alone when it has such names, unless
    SSL_CERT_FILE names a bundle, which is then loaded as well.
    """
    paths = ssl.get_default_verify_paths()
    directory = paths.capath if paths.capath and _has_hashed_names(paths.capath) else None
    if directory:
        context.load_verify_locations(capath=directory)
        if not os.environ.get(paths.openssl_cafile_env):
            return
    for bundle in (paths.cafile, *SYSTEM_CA_FILES):
        if bundle and os.path.exists(bundle):
            context.load_verify_locations(cafile=bundle)
            return
    if not directory:
        context.load_default_certs()


def _has_hashed_names(directory: str) -> bool:
    """Return True when the directory has a name such as 5ad8a5d6.0: a subject hash and a counter."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                stem, dot, counter = entry.name.partition(".")
                if dot and len(stem) == 8 and counter.isdigit() and all(c in "0123456789abcdef" for c in stem):
                    return True
    except OSError:
        pass
    return False


class RegistryClient:
    """Client for one registry domain. Thread-safe: each thread has its own connections."""

    def __init__(self, domain: str, options: ClientOptions):
        self.domain = domain
        self.host = _api_host(domain)
        self.options = options
        self.insecure = (
            options.tls_verify is False or domain in options.insecure_registries or self.host in options.insecure_registries
        )
        self.allow_http = self.insecure or is_loopback(self.host)
        self.base_url: str | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._credentials_loaded = False
        self._credentials: tuple[str, str] | None = None
        # The CAs are loaded on the first HTTPS request to the registry, not here, so a
        # plain-HTTP registry never pays for them (see trust_system_cas).
        self._ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and host name
        if options.tls_verify is False:
            self._ssl_context.check_hostname = False
            self._ssl_context.verify_mode = ssl.CERT_NONE
        self._trust_lock = threading.Lock()
        self._trust_loaded = False

    # -- connection setup ----------------------------------------------------

    def _cert_dirs(self) -> list[str]:
        if self.options.cert_dir:
            return [self.options.cert_dir]
        return [os.path.join(base, self.host) for base in CERTS_D] + [os.path.join(base, self.domain) for base in CERTS_D]

    def _load_trust(self) -> None:
        """Load the system CAs and the registry's certs.d files (CAs, client certificates) once."""
        with self._trust_lock:
            if self._trust_loaded:
                return
            context = self._ssl_context
            if self.options.tls_verify is not False:
                trust_system_cas(context)
            for directory in self._cert_dirs():
                try:
                    names = sorted(os.listdir(directory))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    path = os.path.join(directory, name)
                    if name.endswith(".crt"):
                        context.load_verify_locations(cafile=path)
                    elif name.endswith(".cert"):
                        key = path[: -len(".cert")] + ".key"
                        if not os.path.exists(key):
                            raise RegistryError(f"client certificate {path} has no matching key {key}; add the key or remove the certificate")
                        context.load_cert_chain(path, key)
            self._trust_loaded = True

    def _answers_tls(self) -> bool:
        """Return whether the registry's port completes a TLS handshake, checked without any CA loaded.

        It is used only where plain HTTP is allowed, so that a registry that
        speaks plain HTTP costs no CA loading. Nothing is sent over this connection.
        """
        import socket

        parts = urlparse(f"https://{self.host}")
        try:
            address = (parts.hostname, parts.port or 443)
        except ValueError:
            return True  # an invalid port: the HTTPS request reports it
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(address, timeout=self.options.connect_timeout) as sock:
                with probe.wrap_socket(sock, server_hostname=parts.hostname):
                    return True
        except (ssl.SSLError, ConnectionRefusedError, ConnectionResetError):
            return False
        except OSError:
            return True  # unreachable or slow: let the HTTPS request report it, with its retries

    @property
    def transport(self) -> Transport:
        """This thread's connections to the registry and the hosts it redirects to."""
        transport = getattr(self._local, "transport", None)
        if transport is None:
            transport = Transport(self._tls_context, self.options.connect_timeout, self.options.read_timeout)
            self._local.transport = transport
        return transport

    def _tls_context(self) -> ssl.SSLContext:
        self._load_trust()
        return self._ssl_context

    def _ensure_endpoint(self) -> str:
        """Pick the scheme by probing GET /v2/ and remember the first challenge."""
        with self._lock:
            if self.base_url:
                return self.base_url
            schemes = ["https", "http"] if self.allow_http else ["https"]
            last_error: Exception | None = None
            for scheme in schemes:
                url = f"{scheme}://{self.host}/v2/"
                if scheme == "https" and self.allow_http and not self._answers_tls():
                    last_error = RegistryError(f"{self.host} does not speak TLS")
                    continue
                try:
                    response = self._send_with_retries("GET", url, headers={})
                except TLSError as error:
                    if error.certificate or "certificate" in str(error).lower():
                        raise RegistryError(
                            f"the TLS certificate of registry {self.domain} is not trusted ({_ssl_reason(error)}); "
                            f"put its CA in /etc/containers/certs.d/{self.host}/ca.crt, pass --cert-dir DIR, "
                            "or use --tls-verify=false"
                        ) from error
                    last_error = error  # the server does not speak TLS: try plain HTTP if allowed
                    continue
                except TransportError as error:
                    last_error = error
                    continue
                response.close()
                if response.status_code == 401:
                    self._challenge = self._pick_challenge(response)
                elif response.status_code >= 400 and response.status_code != 404:
                    raise RegistryError(
                        f"registry {self.domain} returned {response.status_code} for GET /v2/; is it a Distribution API v2 registry?"
                    )
                self.base_url = f"{scheme}://{self.host}"
                log.debug("registry %s: using %s", self.domain, self.base_url)
                return self.base_url
            hint = "" if self.allow_http else " (plain HTTP is used only for loopback registries and those given with --tls-verify=false)"
            raise RegistryError(f"cannot reach registry {self.domain}: {last_error}{hint}")

    # -- sending with retries --------------------------------------------------

    def _send_with_retries(self, method: str, url: str, headers: dict) -> Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.transport.request(method, url, headers)
            except TLSError:
                raise
            except TooManyRedirects as error:
                raise RegistryError(f"too many redirects for {url}: {error}") from error
            except InvalidProxy as error:
                raise RegistryError(str(error)) from error
            except UnsupportedURL as error:
                raise RegistryError(f"registry {self.domain} sent {method} {url} to an unusable URL: {error}") from error
            except TransportError as error:
                if attempt >= self.options.max_attempts:
                    raise
                delay = backoff_delay(attempt)
                log.warning("%s %s failed (%s); retrying in %.1f s (attempt %d of %d)",
                            method, url, error, delay, attempt + 1, self.options.max_attempts)
                time.sleep(delay)
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.options.max_attempts:
                delay = _retry_after_seconds(response.headers.get("Retry-After"))
                if delay is None:
                    delay = backoff_delay(attempt)
                delay = min(delay, self.options.max_retry_after)
                log.warning("%s %s returned %d; retrying in %.1f s (attempt %d of %d)",
                            method, url, response.status_code, delay, attempt + 1, self.options.max_attempts)
                response.close()
                time.sleep(delay)
                continue
            return response

    # -- authentication ----------------------------------------------------------

    def _get_credentials(self, repository: str) -> tuple[str, str] | None:
        if not self._credentials_loaded:
            self._credentials = credentials.lookup(self.domain, repository, self.options.state_root, self.options.authfile)
            self._credentials_loaded = True
        return self._credentials

    @staticmethod
    def _pick_challenge(response: Response) -> tuple[str, dict[str, str]] | None:
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for scheme, params in challenges:
            if scheme == "bearer":
                return scheme, params
        for scheme, params in challenges:
            if scheme == "basic":
                return scheme, params
        return None

    def _authorization(self, repository: str, challenge: tuple[str, dict[str, str]] | None, fresh: bool) -> str | None:
        if challenge is None:
            return None
        scheme, params = challenge
        creds = self._get_credentials(repository)
        if scheme == "basic":
            if creds is None:
                raise AuthError(
                    f"registry {self.domain} requires authentication; run: minict login {self.domain}"
                )
            import base64

            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"registry {self.domain} sent a Bearer challenge without a realm")
        scope = params.get("scope") or f"repository:{repository}:pull"
        key = (realm, params.get("service", ""), scope)
        with self._lock:
            cached = self._tokens.get(key)
        if cached and not fresh and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        token, lifetime = self._fetch_token(realm, params.get("service"), scope, creds)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(lifetime - 10, 1))
        return f"Bearer {token}"

    def _fetch_token(self, realm: str, service: str | None, scope: str, creds: tuple[str, str] | None) -> tuple[str, float]:
        parsed = urlparse(realm)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AuthError(f"registry {self.domain} sent an invalid token realm {realm!r}")
        query = {"scope": scope}
        if service:
            query["service"] = service
        separator = "&" if parsed.query else "?"
        url = realm + separator + urlencode(query)
        headers = {}
        realm_host = parsed.netloc
        # Credentials leave for another host only over HTTPS; plain HTTP is
        # acceptable only back to the registry itself (loopback test setups).
        if creds is not None:
            if parsed.scheme == "https" or realm_host == self.host:
                import base64

                headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            else:
                log.warning("not sending credentials for %s to token realm %s over plain HTTP", self.domain, realm)
        response = self._send_with_retries("GET", url, headers=headers)
        try:
            if response.status_code in (401, 403):
                who = f"as {creds[0]}" if creds else "anonymously"
                raise AuthError(
                    f"token server {realm_host} rejected the request {who} for {scope}; "
                    f"check the credentials with: minict login {self.domain}"
                )
            if response.status_code != 200:
                raise AuthError(f"token server {realm_host} returned {response.status_code} for {scope}")
            body = response.read(MAX_TOKEN_BYTES + 1)
        finally:
            response.close()
        if len(body) > MAX_TOKEN_BYTES:
            raise AuthError(f"token server {realm_host} sent a response larger than {MAX_TOKEN_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as error:
            raise AuthError(f"token server {realm_host} sent invalid JSON: {error}") from error
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"token server {realm_host} sent no token")
        lifetime = data.get("expires_in", 60)
        if not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = 60
        return token, float(lifetime)

    def request(self, method: str, path: str, repository: str, headers: dict | None = None) -> Response:
        """Send an authenticated request for `repository`, handling at most one challenge.

        A second 401 after fresh credentials is an AuthError, so a registry that
        keeps challenging cannot loop the client.
        """
        base = self._ensure_endpoint()
        url = base + path
        headers = dict(headers or {})
        authorization = self._authorization(repository, self._challenge, fresh=False)
        for attempt in range(2):
            if authorization:
                headers["Authorization"] = authorization
            response = self._send_with_retries(method, url, headers=headers)
            if response.status_code != 401:
                return response
            challenge = self._pick_challenge(response)
            response.close()
            if challenge is None:
                raise AuthError(f"registry {self.domain} returned 401 for {path} without a usable WWW-Authenticate challenge")
            if attempt == 1:
                break
            self._challenge = challenge
            authorization = self._authorization(repository, challenge, fresh=True)
        creds = self._get_credentials(repository)
        if creds:
            raise AuthError(f"registry {self.domain} rejected the credentials of {creds[0]}; run: minict login {self.domain}")
        raise AuthError(f"registry {self.domain} requires authentication for {repository}; run: minict login {self.domain}")

    def check_login(self, user: str, password: str) -> None:
        """Verify credentials against GET /v2/ without storing them."""
        self._credentials = (user, password)
        self._credentials_loaded = True
        base = self._ensure_endpoint()
        if self._challenge is None:
            return
        authorization = self._authorization("", self._challenge if self._challenge[0] == "basic" else
                                            (self._challenge[0], {**self._challenge[1], "scope": ""}), fresh=True)
        response = self._send_with_retries("GET", base + "/v2/", headers={"Authorization": authorization})
        response.close()
        if response.status_code == 401:
            raise AuthError(f"registry {self.domain} rejected the credentials of {user}")
        if response.status_code >= 400:
            raise RegistryError(f"registry {self.domain} returned {response.status_code} to GET /v2/")

    # -- manifests and blobs -------------------------------------------------------

    def _read_small(self, what: str, fetch):
        """Call `fetch` again when the connection breaks while the body is read.

        A response whose headers arrived can still lose its connection before
        the body ends (a TransportError from the read). The request itself
        was retried already, but not the read, so retry the whole fetch the
        same number of times.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return fetch()
            except TransportError as error:
                if attempt >= self.options.max_attempts:
                    raise RegistryError(f"reading {what} from {self.domain} failed {attempt} times: {error}") from None
                delay = backoff_delay(attempt)
                log.warning("reading %s failed (%s); retrying in %.1f s (attempt %d of %d)",
                            what, error, delay, attempt + 1, self.options.max_attempts)
                time.sleep(delay)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """Fetch a manifest or index by tag or digest; return (body, media type, digest).

        The body is checked against the digest when `reference` is one, and
        against Docker-Content-Digest otherwise.
        """
        return self._read_small(f"manifest {repository}:{reference}",
                                lambda: self._get_manifest_once(repository, reference))

    def _get_manifest_once(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        path = f"/v2/{repository}/manifests/{reference}"
        response = self.request("GET", path, repository, headers={"Accept": MANIFEST_ACCEPT})
        try:
            if response.status_code == 404:
                detail = _error_detail(response)
                raise NotFound(
                    f"manifest {self.domain}/{repository}:{reference} not found"
                    + (f" ({detail})" if detail else "")
                    + "; check the repository name and tag"
                )
            if response.status_code != 200:
                detail = _error_detail(response)
                raise RegistryError(
                    f"registry {self.domain} returned {response.status_code} for manifest {repository}:{reference}"
                    + (f": {detail}" if detail else "")
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
                raise RegistryError(f"manifest {repository}:{reference} is {declared} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
            body = response.read(MAX_MANIFEST_BYTES + 1)
            if len(body) > MAX_MANIFEST_BYTES:
                raise RegistryError(f"manifest {repository}:{reference} is over the {MAX_MANIFEST_BYTES}-byte limit")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = response.headers.get("Docker-Content-Digest")
        finally:
            response.close()

        media_type = content_type
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            media_type = self._media_type_from_body(body, content_type, repository, reference)
        if media_type in MEDIA_DOCKER_SCHEMA1:
            raise RegistryError(
                f"{self.domain}/{repository}:{reference} is a Docker schema 1 manifest, which is deprecated and not "
                "supported; push the image again with a current docker, podman or skopeo"
            )

        if ":" in reference:  # tags cannot contain ":", so this is a digest
            algorithm, _ = parse_digest(reference)
            actual = digest_module.digest_bytes(body, algorithm)
            if actual != reference:
                raise ContentError(f"manifest {repository}@{reference}: content hashes to {actual}; the registry sent the wrong content")
            return body, media_type, reference
        actual = digest_module.digest_bytes(body)
        if header_digest and header_digest.startswith("sha256:") and header_digest != actual:
            raise ContentError(
                f"manifest {repository}:{reference}: content hashes to {actual}, but the registry declared {header_digest}"
            )
        return body, media_type, actual

    def _media_type_from_body(self, body: bytes, content_type: str, repository: str, reference: str) -> str:
        try:
            data = json.loads(body)
        except ValueError as error:
            raise RegistryError(f"manifest {repository}:{reference} is not valid JSON ({error}); Content-Type was {content_type!r}") from error
        if not isinstance(data, dict):
            raise RegistryError(f"manifest {repository}:{reference} is not a JSON object")
        if data.get("schemaVersion") == 1 or content_type in MEDIA_DOCKER_SCHEMA1:
            return MEDIA_DOCKER_SCHEMA1[0]
        declared = data.get("mediaType")
        if declared in INDEX_TYPES + MANIFEST_TYPES:
            return declared
        if "manifests" in data:
            return MEDIA_OCI_INDEX
        if "layers" in data and "config" in data:
            return MEDIA_OCI_MANIFEST
        raise RegistryError(
            f"manifest {repository}:{reference} has unsupported media type {content_type or declared!r}; "
            "minict reads OCI and Docker schema 2 manifests and indexes"
        )

    def open_blob(self, repository: str, digest: str, offset: int = 0) -> Response:
        """Start a streaming blob download, from `offset` when it is above zero.

        The caller checks the status: 206 means the Range was honoured, 200 that
        the server sent the whole blob again.
        """
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", repository, headers=headers)
        if response.status_code == 404:
            response.close()
            raise NotFound(f"blob {digest} of {self.domain}/{repository} not found in the registry")
        if response.status_code not in (200, 206):
            detail = _error_detail(response)
            response.close()
            error = RegistryError(
                f"registry {self.domain} returned {response.status_code} for blob {digest}" + (f": {detail}" if detail else "")
            )
            error.status = response.status_code
            raise error
        return response

    def get_blob_bytes(self, repository: str, digest: str, size: int | None, limit: int) -> bytes:
        """Fetch a small blob (an image config) whole, checking digest and size."""
        if size is not None and size > limit:
            raise RegistryError(f"blob {digest} declares {size} bytes, over the {limit}-byte limit for configs")
        return self._read_small(f"blob {digest}", lambda: self._get_blob_bytes_once(repository, digest, size, limit))

    def _get_blob_bytes_once(self, repository: str, digest: str, size: int | None, limit: int) -> bytes:
        verifier = digest_module.Verifier(digest, size, f"blob {digest}")
        response = self.open_blob(repository, digest)
        try:
            body = response.read(limit + 1)
        finally:
            response.close()
        if len(body) > limit:
            raise RegistryError(f"blob {digest} is over the {limit}-byte limit for configs")
        verifier.update(body)
        verifier.verify()
        return body
