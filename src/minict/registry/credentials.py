"""Registry credentials in the containers auth.json format.

Lookup order, first match wins:
  1. --authfile FILE, or $REGISTRY_AUTH_FILE
  2. $MINICT_DIR/auth.json (written by `minict login`)
  3. ${XDG_RUNTIME_DIR}/containers/auth.json (podman, skopeo, buildah)
  4. ~/.docker/config.json (docker)

A file maps registries to base64 "user:password" under "auths". Keys may be a
bare host[:port], a URL such as https://host:port/v1/, or host/namespace.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from minict.errors import InvalidArgument
from minict.fsutil import atomic_write

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")


def candidate_files(state_root: str, authfile: str | None = None) -> list[str]:
    files = []
    explicit = authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        files.append(explicit)
    files.append(os.path.join(state_root, "auth.json"))
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        files.append(os.path.join(runtime_dir, "containers", "auth.json"))
    files.append(os.path.join(os.path.expanduser("~"), ".docker", "config.json"))
    return files


def login_file(state_root: str, authfile: str | None = None) -> str:
    """Return the file that `minict login` writes."""
    return authfile or os.environ.get("REGISTRY_AUTH_FILE") or os.path.join(state_root, "auth.json")


def _normalize_key(key: str) -> str:
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    key = key.rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key[:-3]
    if key in DOCKER_HUB_KEYS or key == "index.docker.io/v1":
        return "docker.io"
    return key


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            data = json.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise InvalidArgument(f"cannot read credentials file {path}: {error}; fix or remove it") from error
    if not isinstance(data, dict):
        raise InvalidArgument(f"credentials file {path} is not a JSON object; fix or remove it")
    return data


def _decode(path: str, key: str, entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise InvalidArgument(f"credentials for {key} in {path} are not valid base64 user:password") from error
        if not sep:
            raise InvalidArgument(f"credentials for {key} in {path} lack the ':' between user and password")
        return user, password
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return entry["username"], entry["password"]
    return None


def lookup(registry: str, repository_path: str, state_root: str, authfile: str | None = None) -> tuple[str, str] | None:
    """Return (user, password) for `registry`, or None for anonymous access.

    A key naming a namespace (host/namespace) wins over the bare host, as in
    containers-auth.json(5).
    """
    for path in candidate_files(state_root, authfile):
        auths = _load(path).get("auths")
        if not isinstance(auths, dict):
            continue
        entries = {_normalize_key(key): (key, value) for key, value in auths.items()}
        components = repository_path.split("/")
        for length in range(len(components), -1, -1):
            key = "/".join([registry, *components[:length]]) if length else registry
            if key in entries:
                original_key, value = entries[key]
                found = _decode(path, original_key, value)
                if found:
                    return found
    return None


def store(registry: str, user: str, password: str, path: str) -> None:
    """Save credentials for `registry` in `path`, mode 0600, keeping other entries."""
    data = _load(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise InvalidArgument(f"credentials file {path} has an invalid 'auths' entry; fix or remove it")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    auths[registry] = {"auth": token}
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(data, indent="\t").encode() + b"\n", mode=0o600)
    os.chmod(path, 0o600)


def remove(registry: str, path: str) -> bool:
    """Delete the credentials for `registry` from `path`; return whether any existed."""
    data = _load(path)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [key for key in auths if _normalize_key(key) == _normalize_key(registry)]
    for key in keys:
        del auths[key]
    if keys:
        atomic_write(path, json.dumps(data, indent="\t").encode() + b"\n", mode=0o600)
    return bool(keys)
