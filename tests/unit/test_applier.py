"""The layer applier against hand-built archives: normal content, whiteouts, and hostile entries.

Needs root (chroot, chown, mknod, trusted.* xattrs), as pulls do.
"""

import os
import stat

import pytest

from minict.errors import LayerError
from minict.unpack.applier import NATIVE, OVERLAY, Applier
from tests.helpers import tar_bytes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the applier chroots and chowns: run the suite as root")

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw=ep


def apply(directory, entries, mode=OVERLAY):
    applier = Applier(str(directory), mode, "layer test")
    applier.write(tar_bytes(entries))
    return applier.finish()


@pytest.fixture
def sentinel(tmp_path):
    """A host file outside the snapshot that no layer may touch."""
    path = tmp_path / "host" / "sentinel"
    path.parent.mkdir()
    path.write_text("host data")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "snapshot"
    path.mkdir()
    return path


def test_applier_keeps_metadata(snapshot):
    apply(snapshot, [
        {"name": "bin", "type": "dir", "mode": 0o755},
        {"name": "bin/su", "data": b"su", "mode": 0o4755},
        {"name": "bin/wall", "data": b"w", "mode": 0o2755, "gid": 5},
        {"name": "tmp", "type": "dir", "mode": 0o1777},
        {"name": "bin/ping", "data": b"p", "mode": 0o755,
         "pax": {"SCHILY.xattr.security.capability": CAPABILITY.decode("latin-1")}},
        {"name": "home/app/.profile", "data": b"x", "mode": 0o600, "uid": 1000, "gid": 1000},
        {"name": "dev/null", "type": "chr", "device": (1, 3), "mode": 0o666},
        {"name": "run/fifo", "type": "fifo", "mode": 0o600},
        {"name": "lib", "type": "symlink", "linkname": "/usr/lib"},
        {"name": "bin/sh", "type": "hardlink", "linkname": "bin/su"},
        {"name": "d" * 150 + "/" + "f" * 200, "data": b"long"},
    ])

    assert stat.S_IMODE(os.lstat(snapshot / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(snapshot / "bin/wall").st_mode) == 0o2755
    assert os.lstat(snapshot / "bin/wall").st_gid == 5
    assert stat.S_IMODE(os.lstat(snapshot / "tmp").st_mode) == 0o1777
    assert os.getxattr(snapshot / "bin/ping", "security.capability") == CAPABILITY

    profile = os.lstat(snapshot / "home/app/.profile")
    assert (profile.st_uid, profile.st_gid, stat.S_IMODE(profile.st_mode)) == (1000, 1000, 0o600)
    null = os.lstat(snapshot / "dev/null")
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISFIFO(os.lstat(snapshot / "run/fifo").st_mode)

    assert os.readlink(snapshot / "lib") == "/usr/lib"
    assert os.lstat(snapshot / "bin/sh").st_ino == os.lstat(snapshot / "bin/su").st_ino
    assert os.lstat(snapshot / "bin/su").st_nlink == 2
    assert (snapshot / ("d" * 150) / ("f" * 200)).read_bytes() == b"long"
    assert os.lstat(snapshot / "bin/su").st_mtime == 1_000_000
    assert os.lstat(snapshot / "bin").st_mtime == 1_000_000


def test_applier_overlay_whiteouts(snapshot):
    apply(snapshot, [
        {"name": "data", "type": "dir"},
        {"name": "data/.wh.gone.txt"},
        {"name": "data/.wh.gone-dir"},
        {"name": "data/opaque/.wh..wh..opq"},
        {"name": "data/opaque/new.txt", "data": b"new"},
        {"name": "deep/a/b/.wh.c"},
        {"name": "deep", "type": "dir", "mode": 0o750},
    ])
    for name in ("data/gone.txt", "data/gone-dir", "deep/a/b/c"):
        info = os.lstat(snapshot / name)
        assert stat.S_ISCHR(info.st_mode), name
        assert info.st_rdev == os.makedev(0, 0), name
    assert not (snapshot / "data/.wh.gone.txt").exists()
    assert os.getxattr(snapshot / "data/opaque", "trusted.overlay.opaque") == b"y"
    assert (snapshot / "data/opaque/new.txt").read_bytes() == b"new"
    assert not (snapshot / "data/opaque/.wh..wh..opq").exists()
    assert stat.S_IMODE(os.lstat(snapshot / "deep").st_mode) == 0o750


def test_applier_native_whiteouts_delete(snapshot):
    apply(snapshot, [
        {"name": "data/keep.txt", "data": b"k"},
        {"name": "data/gone.txt", "data": b"g"},
        {"name": "data/gone-dir/sub/file", "data": b"g"},
        {"name": "data/opaque/old.txt", "data": b"o"},
        {"name": "data/opaque/oldsub/x", "data": b"o"},
    ], mode=NATIVE)
    apply(snapshot, [
        {"name": "data/.wh.gone.txt"},
        {"name": "data/.wh.gone-dir"},
        {"name": "data/opaque/new.txt", "data": b"n"},
        {"name": "data/opaque/.wh..wh..opq"},
        {"name": "missing/parent/.wh.x"},
    ], mode=NATIVE)
    assert sorted(os.listdir(snapshot / "data")) == ["keep.txt", "opaque"]
    assert sorted(os.listdir(snapshot / "data/opaque")) == ["new.txt"]
    assert not (snapshot / "missing").exists()


def test_applier_replaces_types(snapshot):
    apply(snapshot, [
        {"name": "a/inner.txt", "data": b"1"},
        {"name": "a", "data": b"now a file"},
        {"name": "b", "data": b"file"},
        {"name": "b", "type": "dir"},
        {"name": "b/inner.txt", "data": b"2"},
        {"name": "c", "data": b"first"},
        {"name": "c", "data": b"second"},
    ])
    assert (snapshot / "a").read_bytes() == b"now a file"
    assert (snapshot / "b/inner.txt").read_bytes() == b"2"
    assert (snapshot / "c").read_bytes() == b"second"


def test_applier_duplicate_does_not_write_through_hardlink(snapshot):
    apply(snapshot, [
        {"name": "one", "data": b"original"},
        {"name": "two", "type": "hardlink", "linkname": "one"},
        {"name": "two", "data": b"replacement"},
    ])
    assert (snapshot / "one").read_bytes() == b"original"
    assert (snapshot / "two").read_bytes() == b"replacement"


def test_applier_absolute_symlink_not_followed_on_host(snapshot, sentinel):
    apply(snapshot, [
        {"name": "etc", "type": "dir"},
        {"name": "etc/link", "type": "symlink", "linkname": str(sentinel)},
    ])
    apply(snapshot, [{"name": "etc/link", "data": b"replaced"}])
    assert (snapshot / "etc/link").read_bytes() == b"replaced"
    assert sentinel.read_text() == "host data"
    apply(snapshot, [
        {"name": "etc/link2", "type": "symlink", "linkname": str(sentinel)},
    ])
    apply(snapshot, [{"name": "etc/.wh.link2"}], mode=NATIVE)
    assert not os.path.lexists(snapshot / "etc/link2")
    assert sentinel.read_text() == "host data"


HOSTILE = {
    "dotdot": ([{"name": "../escape", "data": b"x"}], "contains '..'"),
    "dotdot-inside": ([{"name": "a/../../escape", "data": b"x"}], "contains '..'"),
    "absolute": ([{"name": "/etc/passwd", "data": b"x"}], "absolute name"),
    "symlink-parent-root": ([
        {"name": "escape", "type": "symlink", "linkname": "/"},
        {"name": "escape/etc/owned", "data": b"x"},
    ], "parent 'escape' is a symbolic link"),
    "symlink-parent-dotdot": ([
        {"name": "up", "type": "symlink", "linkname": "../.."},
        {"name": "up/owned", "data": b"x"},
    ], "parent 'up' is a symbolic link"),
    "hardlink-outside": ([{"name": "link", "type": "hardlink", "linkname": "../../etc/passwd"}], "contains '..'"),
    "hardlink-absolute": ([{"name": "link", "type": "hardlink", "linkname": "/etc/passwd"}], "absolute name"),
    "hardlink-through-symlink": ([
        {"name": "dir", "type": "symlink", "linkname": "/etc"},
        {"name": "link", "type": "hardlink", "linkname": "dir/passwd"},
    ], "not a directory of this layer"),
    "hardlink-missing": ([{"name": "link", "type": "hardlink", "linkname": "nothing"}], "not in this layer"),
    "whiteout-dotdot": ([{"name": "a/.wh..."}], "names no valid file"),
    "whiteout-empty": ([{"name": "a/.wh."}], "names no valid file"),
    "whiteout-directory-component": ([{"name": ".wh.a/b", "data": b"x"}], "whiteout name as a directory component"),
    "file-parent-is-file": ([
        {"name": "f", "data": b"x"},
        {"name": "f/child", "data": b"y"},
    ], "parent 'f' is not a directory"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("mode", [OVERLAY, NATIVE])
def test_applier_rejects_hostile(case, mode, snapshot, sentinel):
    entries, fragment = HOSTILE[case]
    with pytest.raises(LayerError) as caught:
        apply(snapshot, entries, mode)
    assert fragment in str(caught.value)
    assert sentinel.read_text() == "host data"
    assert stat.S_IMODE(os.stat(sentinel).st_mode) == 0o600
    assert sorted(os.listdir(sentinel.parent)) == ["sentinel"]


def test_applier_hardlink_to_symlink_then_chmod(snapshot, sentinel):
    apply(snapshot, [
        {"name": "sym", "type": "symlink", "linkname": str(sentinel)},
        {"name": "hard", "type": "hardlink", "linkname": "sym"},
        {"name": "hard", "type": "hardlink", "linkname": "sym", "mode": 0o777},
    ])
    assert os.readlink(snapshot / "hard") == str(sentinel)
    assert stat.S_IMODE(os.stat(sentinel).st_mode) == 0o600


def test_applier_drops_overlay_xattrs(snapshot):
    result = apply(snapshot, [
        {"name": "x", "data": b"x", "pax": {"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                            "SCHILY.xattr.user.keep": "yes"}},
    ])
    assert result["dropped_overlay_xattrs"] == 1
    assert os.listxattr(snapshot / "x") == ["user.keep"]


def test_applier_rejects_garbage(snapshot):
    applier = Applier(str(snapshot), OVERLAY, "layer junk")
    applier.write(b"this is not a tar archive" * 100)
    with pytest.raises(LayerError) as caught:
        applier.finish()
    assert "layer junk" in str(caught.value)


def test_applier_whiteout_below_a_removed_directory(snapshot):
    """A whiteout listed before its parents, for a path whose directory a lower layer already removed."""
    apply(snapshot, [{"name": "a/b/file", "data": b"x"}], mode=NATIVE)
    apply(snapshot, [{"name": ".wh.a"}], mode=NATIVE)
    apply(snapshot, [{"name": "a/b/.wh.file"}, {"name": "a", "type": "dir"}, {"name": "a/b", "type": "dir"},
                     {"name": "a/b/new", "data": b"n"}], mode=NATIVE)
    assert sorted(os.listdir(snapshot / "a/b")) == ["new"]


def test_applier_directory_replaced_by_symlink_in_a_lower_layer(snapshot, sentinel):
    """Layer 1 has a directory, layer 2 makes it a symlink to the host's directory, layer 3 writes below it."""
    apply(snapshot, [{"name": "d/keep", "data": b"k"}], mode=NATIVE)
    apply(snapshot, [{"name": "d", "type": "symlink", "linkname": str(sentinel.parent)}], mode=NATIVE)
    # The lower symlink is replaced by a directory, as an overlay upper directory would hide it.
    apply(snapshot, [{"name": "d/sentinel", "data": b"owned"}], mode=NATIVE)
    assert sentinel.read_text() == "host data"
    assert not os.path.islink(snapshot / "d")
    assert (snapshot / "d/sentinel").read_bytes() == b"owned"
