import pytest

from minict.errors import InvalidArgument, NotFound
from minict.platform import Platform, choose_manifest, parse_platform


def entry(digest, os_name, arch, variant=None):
    platform = {"os": os_name, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"digest": digest, "size": 1, "platform": platform}


INDEX = [
    entry("amd", "linux", "amd64"),
    entry("arm7", "linux", "arm", "v7"),
    entry("arm64", "linux", "arm64", "v8"),
    entry("att", "unknown", "unknown"),
]


def test_platform_chooses_exact_match():
    assert choose_manifest(INDEX, Platform("linux", "amd64"), "x")["digest"] == "amd"
    assert choose_manifest(INDEX, Platform("linux", "arm", "v7"), "x")["digest"] == "arm7"


def test_platform_arm64_variant_defaults_to_v8():
    assert choose_manifest(INDEX, parse_platform("linux/arm64"), "x")["digest"] == "arm64"
    no_variant = [entry("plain", "linux", "arm64")]
    assert choose_manifest(no_variant, parse_platform("linux/arm64/v8"), "x")["digest"] == "plain"


def test_platform_missing_lists_available_and_skips_attestations():
    with pytest.raises(NotFound) as caught:
        choose_manifest(INDEX, Platform("linux", "s390x"), "img:1")
    message = str(caught.value)
    assert "img:1 has no image for linux/s390x" in message
    assert "linux/amd64, linux/arm/v7, linux/arm64/v8" in message
    assert "unknown" not in message


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_platform_parse_rejects_invalid(text):
    with pytest.raises(InvalidArgument):
        parse_platform(text)
