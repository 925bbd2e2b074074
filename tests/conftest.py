"""Fixtures: temporary state roots, and the testbed's Distribution registry on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile

import pytest

from tests.helpers import TESTBED


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_env(path: str) -> dict:
    values = {}
    with open(path) as file:
        for line in file:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.removeprefix("export ")] = value.strip("'\"")
    return values


class Registry:
    def __init__(self, directory: str, env: dict, summary: dict):
        self.directory = directory
        self.env = env
        self.address = env["TESTBED_REGISTRY"]
        self.summary = summary

    def digest(self, name: str) -> str:
        """Return the manifest digest of repo:tag, as the registry serves it."""
        return self.summary[name]["digest"]

    def platform_digest(self, name: str, platform: str) -> str:
        """Return the digest of one platform's manifest in the index repo:tag."""
        for entry in self.summary[name]["platforms"]:
            if entry["platform"] == platform:
                return entry["digest"]
        raise KeyError(platform)


def _start_registry(tmp_root: str, extra: list[str], only: str | None) -> Registry:
    if os.geteuid() != 0:
        pytest.fail("the registry tests need root (buildah and skopeo build the images as root)")
    if not os.path.isdir(TESTBED):
        pytest.fail(f"testbed not found at {TESTBED}; set MINICT_TESTBED")
    port = _free_port()
    directory = os.path.join(tmp_root, f"registry-{port}")
    subprocess.run(["bash", f"{TESTBED}/start-registry.sh", "-q", "-p", str(port), "-d", directory, *extra],
                   check=True, capture_output=True, timeout=120)
    summary_path = os.path.join(tmp_root, f"summary-{port}.json")
    seed = ["bash", f"{TESTBED}/seed-images.sh", "-q", "--env", f"{directory}/env", "--summary-json", summary_path]
    if only:
        seed += ["--only", only]
    subprocess.run(seed, check=True, capture_output=True, timeout=600)
    with open(summary_path) as file:
        raw = json.load(file)
    summary = {f"{item['repo']}:{item['ref']}": item for item in raw if "parent" not in item}
    return Registry(directory, _read_env(f"{directory}/env"), summary)


def _stop_registry(registry: Registry) -> None:
    subprocess.run(["bash", f"{TESTBED}/stop-registry.sh", "-q", "-d", registry.directory, "--purge"],
                   capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def session_tmp():
    with tempfile.TemporaryDirectory(prefix="minict-tests-") as path:
        yield path


@pytest.fixture(scope="session")
def registry(session_tmp):
    """The plain-HTTP registry, seeded with every testbed image."""
    registry = _start_registry(session_tmp, [], None)
    yield registry
    _stop_registry(registry)


@pytest.fixture(scope="session")
def tls_registry(session_tmp):
    """A TLS registry with basic auth, seeded with the alpine images."""
    registry = _start_registry(session_tmp, ["--tls", "--auth", "tester:secret"], "alpine")
    yield registry
    _stop_registry(registry)


@pytest.fixture
def root(tmp_path):
    """An empty state root for one test."""
    path = tmp_path / "minict"
    return str(path)
