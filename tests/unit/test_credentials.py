import base64
import json
import os
import stat

import pytest

from minict.errors import InvalidArgument
from minict.registry import credentials


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(data, file)


def encode(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return tmp_path


def test_credentials_store_and_lookup(isolated):
    root = str(isolated / "root")
    path = credentials.login_file(root)
    credentials.store("127.0.0.1:5443", "tester", "s:e:cret", path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as file:
        assert json.load(file) == {"auths": {"127.0.0.1:5443": {"auth": encode("tester", "s:e:cret")}}}
    assert credentials.lookup("127.0.0.1:5443", "alpine", root) == ("tester", "s:e:cret")
    assert credentials.lookup("127.0.0.1:5000", "alpine", root) is None


def test_credentials_read_podman_and_docker_files(isolated):
    root = str(isolated / "root")
    write(str(isolated / "run" / "containers" / "auth.json"), {"auths": {"quay.io": {"auth": encode("p", "1")}}})
    write(str(isolated / "home" / ".docker" / "config.json"),
          {"auths": {"https://index.docker.io/v1/": {"auth": encode("d", "2")}}})
    assert credentials.lookup("quay.io", "x/y", root) == ("p", "1")
    assert credentials.lookup("docker.io", "library/alpine", root) == ("d", "2")


def test_credentials_namespace_key_wins(isolated):
    root = str(isolated / "root")
    write(os.path.join(root, "auth.json"), {"auths": {
        "reg.example": {"auth": encode("host", "1")},
        "reg.example/team": {"auth": encode("team", "2")},
    }})
    assert credentials.lookup("reg.example", "team/app", root) == ("team", "2")
    assert credentials.lookup("reg.example", "other/app", root) == ("host", "1")


def test_credentials_remove(isolated):
    root = str(isolated / "root")
    path = credentials.login_file(root)
    credentials.store("a.example", "u", "p", path)
    assert credentials.remove("a.example", path) is True
    assert credentials.remove("a.example", path) is False
    assert credentials.lookup("a.example", "x", root) is None


def test_credentials_invalid_base64_is_reported(isolated):
    root = str(isolated / "root")
    write(os.path.join(root, "auth.json"), {"auths": {"r.example": {"auth": "%%%"}}})
    with pytest.raises(InvalidArgument) as caught:
        credentials.lookup("r.example", "x", root)
    assert "not valid base64" in str(caught.value)
