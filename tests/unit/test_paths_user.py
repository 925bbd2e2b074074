import os
import threading

import pytest

from minict.runtime.paths import secure_join
from minict.runtime.user import UserError, resolve


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("/", root / "to-root")
    os.symlink("../../../../..", root / "up")
    os.symlink("/etc", root / "abs-etc")
    os.symlink("usr/lib", root / "lib")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return str(root)


@pytest.mark.parametrize("path, expected", [
    ("/etc/hosts", "etc/hosts"),
    ("/to-root/etc/passwd", "etc/passwd"),
    ("/up/etc/shadow", "etc/shadow"),
    ("/../../etc", "etc"),
    ("/abs-etc/hostname", "etc/hostname"),
    ("/lib/libc.so", "usr/lib/libc.so"),
    ("/to-root", ""),
    ("relative/x", "relative/x"),
])
def test_secure_join_stays_inside(rootfs, path, expected):
    assert secure_join(rootfs, path) == os.path.join(rootfs, expected).rstrip("/")


def test_secure_join_symlink_loop(rootfs):
    with pytest.raises(OSError) as caught:
        secure_join(rootfs, "/loop1/x")
    assert "too many symbolic links" in str(caught.value)


def write(path, text):
    with open(path, "w") as file:
        file.write(text)


@pytest.fixture
def etc(tmp_path):
    write(tmp_path / "passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                               "broken line\nnohome:x:7:7::::\n")
    write(tmp_path / "group", "root:x:0:\napp:x:1000:\nwheel:x:10:root,app\naudio:x:29:app\nstaff:x:50:\n")
    return tmp_path


@pytest.mark.parametrize("spec, uid, gid, home, groups", [
    ("app", 1000, 1000, "/home/app", [10, 29]),
    ("1000", 1000, 1000, "/home/app", [10, 29]),
    ("app:staff", 1000, 50, "/home/app", []),
    ("app:77", 1000, 77, "/home/app", []),
    ("4242", 4242, 0, "/", []),
    ("4242:4343", 4242, 4343, "/", []),
    ("root", 0, 0, "/root", [10]),
    ("nohome", 7, 7, "/", []),
])
def test_user_resolve(etc, spec, uid, gid, home, groups):
    user = resolve(spec, str(etc / "passwd"), str(etc / "group"))
    assert user.uid == uid
    assert user.gid == gid
    assert user.home == home
    assert user.additional_gids == groups


@pytest.mark.parametrize("spec, message", [
    ("ghost", "unable to find user ghost"),
    ("app:ghosts", "unable to find group ghosts"),
    (":1", "the user part is empty"),
])
def test_user_resolve_errors(etc, spec, message):
    with pytest.raises(UserError) as caught:
        resolve(spec, str(etc / "passwd"), str(etc / "group"))
    assert message in str(caught.value)


def test_user_passwd_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "passwd")
    result = {}
    thread = threading.Thread(target=lambda: result.update(user=resolve("1", str(tmp_path / "passwd"),
                                                                        str(tmp_path / "group"))))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert result["user"].uid == 1


def test_remove_tree_flat_and_nested(tmp_path):
    from minict.fsutil import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "file").write_text("x")
    (flat / "link").symlink_to(outside)
    os.mkfifo(flat / "fifo")
    nested = tmp_path / "nested"
    (nested / "a" / "b").mkdir(parents=True)
    (nested / "a" / "b" / "file").write_text("y")
    (nested / "a" / "link").symlink_to(outside)
    for path in (flat, nested, tmp_path / "missing"):
        remove_tree(str(path))
        assert not os.path.lexists(path)
    assert (outside / "keep").read_text() == "kept"
