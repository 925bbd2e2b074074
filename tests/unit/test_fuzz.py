"""Property-based fuzzing (hypothesis) of the parsers and the layer applier, bounded in examples.

Any exception other than minict's own error types is a bug. So is a layer
that changes anything outside its snapshot. The example counts keep the run
to a few seconds; raise MINICT_FUZZ_EXAMPLES for a longer search.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minict.errors import MinictError
from minict.pull import parse_config, parse_index, parse_manifest
from minict.reference import parse_reference
from tests.helpers import tar_bytes

EXAMPLES = int(os.environ.get("MINICT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

REFERENCE_ALPHABET = st.sampled_from(list("abcz09AZ-_.:/@+ ") + ["sha256:", "localhost", "..", "\u00e9", "\x00"])


@FUZZ
@given(st.lists(REFERENCE_ALPHABET, max_size=40).map("".join) | st.text(max_size=80))
def test_reference_parser_raises_only_its_errors(text):
    try:
        reference = parse_reference(text)
    except MinictError:
        return
    # Whatever parses prints back to a form that parses to the same reference.
    assert parse_reference(str(reference)) == reference


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
DIGEST = "sha256:" + "a" * 64
DESCRIPTOR = st.fixed_dictionaries({"mediaType": st.sampled_from(["application/vnd.oci.image.layer.v1.tar+gzip",
                                                                  "text/plain", ""]),
                                    "digest": st.sampled_from([DIGEST, "sha256:short", "md5:00", 7]),
                                    "size": st.one_of(st.integers(-5, 10**12), st.text(max_size=3))})


@FUZZ
@given(st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"schemaVersion": st.sampled_from([2, 1, "2"]), "config": DESCRIPTOR,
                           "layers": st.lists(DESCRIPTOR, max_size=3)}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
))
def test_manifest_and_index_parsers_raise_only_their_errors(body):
    for parse in (parse_manifest, parse_index):
        try:
            parse(body, "fuzzed manifest")
        except MinictError:
            pass


@FUZZ
@given(st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"architecture": st.text(max_size=5), "os": st.sampled_from(["linux", "", 3]),
                           "rootfs": st.fixed_dictionaries({"type": st.sampled_from(["layers", "x"]),
                                                            "diff_ids": st.lists(st.sampled_from([DIGEST, "x", 1]),
                                                                                 max_size=3)}),
                           "config": JSON_VALUES}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
), st.integers(0, 3))
def test_config_parser_raises_only_its_errors(body, layers):
    try:
        parse_config(body, "fuzzed config", layers)
    except MinictError:
        pass


NAMES = st.lists(st.sampled_from(["a", "b", "..", ".", "", ".wh.a", ".wh..wh..opq", "etc", "/", "x y", "\u00e9"]),
                 min_size=1, max_size=4).map("/".join)
ENTRY = st.fixed_dictionaries(
    {"name": NAMES, "type": st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
     "linkname": st.one_of(NAMES, st.sampled_from(["/", "/etc", "../../..", "/tmp", "a/../../x"])),
     "data": st.binary(max_size=16), "mode": st.sampled_from([0o644, 0o755, 0o4755, 0o000, 0o7777])})


def _tree_digest(path: str) -> str:
    """Hash every name, type, mode and content below `path`, without following symlinks."""
    digest = hashlib.sha256()
    for directory, subdirectories, files in sorted(os.walk(path)):
        subdirectories.sort()
        for name in sorted(files) + subdirectories:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            digest.update(f"{full}:{info.st_mode}:{info.st_size}".encode())
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as file:
                    digest.update(file.read())
    return digest.hexdigest()


@pytest.mark.skipif(os.geteuid() != 0, reason="the applier chroots and chowns: run the suite as root")
@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(ENTRY, min_size=1, max_size=6), st.sampled_from(["overlay", "native"]))
def test_applier_never_writes_outside_its_snapshot(tmp_path_factory, entries, mode):
    from minict.unpack.applier import Applier

    base = tmp_path_factory.mktemp("fuzz")
    outside = base / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("host data")
    snapshot = base / "snapshot"
    snapshot.mkdir()
    before = _tree_digest(str(outside))
    try:
        layer = tar_bytes(entries)
    except (ValueError, UnicodeError):
        return  # tarfile cannot even write this entry
    applier = Applier(str(snapshot), mode, "fuzzed layer")
    try:
        applier.write(layer)
        applier.finish()
    except MinictError:
        pass
    assert _tree_digest(str(outside)) == before
    assert sorted(os.listdir(base)) == ["outside", "snapshot"]
