import pytest

from minict.errors import InvalidArgument
from minict.reference import parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, domain, path, tag, digest, familiar",
    [
        ("alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None, "alpine:3.20"),
        ("user/app", "docker.io", "user/app", "latest", None, "user/app:latest"),
        ("docker.io/library/alpine:1", "docker.io", "library/alpine", "1", None, "alpine:1"),
        ("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None, "127.0.0.1:5000/busybox:latest"),
        ("host:5000/a/b/c:v1.2-rc_3", "host:5000", "a/b/c", "v1.2-rc_3", None, "host:5000/a/b/c:v1.2-rc_3"),
        ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
        ("localhost:5000/app", "localhost:5000", "app", "latest", None, "localhost:5000/app:latest"),
        (f"app@{DIGEST}", "docker.io", "library/app", None, DIGEST, f"app@{DIGEST}"),
        (f"app:1@{DIGEST}", "docker.io", "library/app", "1", DIGEST, f"app:1@{DIGEST}"),
        ("registry.example.com/team/app__x.y-z", "registry.example.com", "team/app__x.y-z", "latest", None,
         "registry.example.com/team/app__x.y-z:latest"),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None, "[::1]:5000/app:latest"),
    ],
)
def test_reference_normalizes(text, domain, path, tag, digest, familiar):
    reference = parse_reference(text)
    assert reference.domain == domain
    assert reference.path == path
    assert reference.tag == tag
    assert reference.digest == digest
    assert reference.familiar() == familiar


def test_reference_digest_decides_what_is_fetched():
    reference = parse_reference(f"app:1@{DIGEST}")
    assert reference.object == DIGEST


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("Alpine", "must be lowercase"),
        ("user/App:1", "must be lowercase"),
        ("alpine:", "tag ''"),
        ("alpine:-bad", "tag '-bad'"),
        ("alpine:" + "a" * 129, "1-128 characters"),
        ("alpine@sha256:abc", "64 lower-case hex digits"),
        ("alpine@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("alpine@sha256:" + "A" * 64, "lower-case hex"),
        ("a//b", "path component ''"),
        ("a/b/", "path component ''"),
        ("-app", "path component '-app'"),
        ("app-", "path component 'app-'"),
        ("al pine", "white space"),
        ("a" * 256, "longer than 255"),
        ("exa_mple.com:80/app", "not a valid registry"),
    ],
)
def test_reference_rejects_invalid(text, fragment):
    with pytest.raises(InvalidArgument) as caught:
        parse_reference(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("name", [
    "docker.io/library/alpine:3.20",
    "127.0.0.1:5000/team/app@sha256:" + "a" * 64,
    "registry.example/ünïcode/name:tag",
    "host/a b%c+d~e_f",
])
def test_record_file_name_matches_quote(name):
    from urllib.parse import quote

    from minict.images import record_file_name

    assert record_file_name(name) == quote(name, safe=":@") + ".json"
