"""cgroup v1 and v2 on fake trees in a temporary directory: the files minict writes, and layout detection."""

from __future__ import annotations

import os

import pytest

from minict.runtime import cgroups


def make_v2_root(tmp_path) -> str:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("\n")
    return str(root)


def read(path) -> str:
    with open(path) as file:
        return file.read()


def test_v2_create_enables_controllers_and_writes_limits(tmp_path):
    root = make_v2_root(tmp_path)
    group = cgroups.CgroupV2({"": root}, "/minict/abc")
    # The kernel fills these in a real tree when a directory is made; the fake one does it by hand.
    os.makedirs(os.path.join(root, "minict"))
    with open(os.path.join(root, "minict", "cgroup.controllers"), "w") as file:
        file.write("cpuset cpu io memory pids\n")
    with open(os.path.join(root, "minict", "cgroup.subtree_control"), "w") as file:
        file.write("")
    group.create({
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1"},
        "pids": {"limit": 20},
    })
    directory = os.path.join(root, "minict", "abc")
    assert read(os.path.join(root, "cgroup.subtree_control")) == "+cpu +cpuset +memory +pids +io"
    assert read(os.path.join(root, "minict", "cgroup.subtree_control")) == "+cpu +cpuset +memory +pids +io"
    assert read(os.path.join(directory, "memory.max")) == str(64 << 20)
    assert read(os.path.join(directory, "memory.swap.max")) == str(64 << 20)  # v2 counts swap alone
    assert read(os.path.join(directory, "cpu.weight")) == "20"
    assert read(os.path.join(directory, "cpu.max")) == "150000 100000"
    assert read(os.path.join(directory, "cpuset.cpus")) == "0-1"
    assert read(os.path.join(directory, "pids.max")) == "20"


def test_v2_unlimited_values(tmp_path):
    root = make_v2_root(tmp_path)
    group = cgroups.CgroupV2({"": root}, "/c")
    group.create({"memory": {"limit": 1 << 30, "swap": -1}, "pids": {"limit": -1}})
    assert read(os.path.join(root, "c", "memory.swap.max")) == "max"
    assert read(os.path.join(root, "c", "pids.max")) == "max"


def test_v2_freeze_and_oom(tmp_path):
    root = make_v2_root(tmp_path)
    group = cgroups.CgroupV2({"": root}, "/c")
    group.create()
    directory = os.path.join(root, "c")
    with open(os.path.join(directory, "cgroup.events"), "w") as file:
        file.write("populated 1\nfrozen 1\n")
    group.freeze(True)
    assert read(os.path.join(directory, "cgroup.freeze")) == "1"
    with open(os.path.join(directory, "memory.events"), "w") as file:
        file.write("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert group.oom_kills() == 1
    with open(os.path.join(directory, "cgroup.events"), "w") as file:
        file.write("populated 1\nfrozen 1\n")
    with pytest.raises(cgroups.CgroupError, match="did not thaw"):
        group.freeze(False, timeout=0.05)


def test_cpu_weight_matches_runc_formula():
    assert cgroups.cpu_weight(2) == 1
    assert cgroups.cpu_weight(1024) == 39
    assert cgroups.cpu_weight(262144) == 10000


def make_v1(tmp_path) -> dict[str, str]:
    mounts = {}
    for controller in cgroups.V1_CONTROLLERS:
        path = tmp_path / controller
        path.mkdir()
        mounts[controller] = str(path)
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("")
    return mounts


def test_v1_create_fills_cpuset_and_writes_limits(tmp_path):
    mounts = make_v1(tmp_path)
    # A new cpuset directory in a real tree has empty cpus and mems files.
    for level in ("minict", "minict/abc"):
        os.makedirs(os.path.join(mounts["cpuset"], level))
        for name in ("cpuset.cpus", "cpuset.mems"):
            open(os.path.join(mounts["cpuset"], level, name), "w").close()
    os.makedirs(os.path.join(mounts["memory"], "minict", "abc"))
    with open(os.path.join(mounts["memory"], "minict", "abc", "memory.memsw.limit_in_bytes"), "w"):
        pass
    group = cgroups.CgroupV1(mounts, "/minict/abc")
    group.create({"memory": {"limit": 64 << 20, "swap": 64 << 20}, "cpu": {"shares": 512, "quota": 50000,
                                                                           "period": 100000}, "pids": {"limit": 0}})
    assert read(os.path.join(mounts["cpuset"], "minict", "cpuset.cpus")) == "0-3"
    assert read(os.path.join(mounts["cpuset"], "minict", "abc", "cpuset.mems")) == "0"
    assert read(os.path.join(mounts["memory"], "minict", "abc", "memory.limit_in_bytes")) == str(64 << 20)
    assert read(os.path.join(mounts["memory"], "minict", "abc", "memory.memsw.limit_in_bytes")) == str(64 << 20)
    assert read(os.path.join(mounts["cpu"], "minict", "abc", "cpu.shares")) == "512"
    assert read(os.path.join(mounts["cpu"], "minict", "abc", "cpu.cfs_quota_us")) == "50000"
    assert read(os.path.join(mounts["pids"], "minict", "abc", "pids.max")) == "max"
    assert sorted(group.directories()) == sorted(os.path.join(m, "minict", "abc") for m in mounts.values())


def test_v1_swap_without_accounting_is_a_clear_error(tmp_path):
    mounts = make_v1(tmp_path)
    group = cgroups.CgroupV1(mounts, "/c")
    with pytest.raises(cgroups.CgroupError, match="no swap accounting"):
        group.create({"memory": {"limit": 1 << 30, "swap": 2 << 30}})


def test_v1_oom_kills_from_oom_control(tmp_path):
    mounts = make_v1(tmp_path)
    group = cgroups.CgroupV1(mounts, "/c")
    group.create()
    with open(os.path.join(mounts["memory"], "c", "memory.oom_control"), "w") as file:
        file.write("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_kills() == 2


def test_remove_deletes_every_directory(tmp_path):
    mounts = make_v1(tmp_path)
    group = cgroups.CgroupV1(mounts, "/c")
    for directory in group.directories():
        os.makedirs(directory)
    group.remove()
    assert not any(os.path.exists(d) for d in group.directories())
    group.remove()  # already gone: not an error


def test_bad_paths_rejected():
    for path in ("relative", "/a/../b"):
        with pytest.raises(cgroups.CgroupError, match="invalid cgroups path"):
            cgroups.CgroupV2({"": "/x"}, path)


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
COMOUNTED = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"


def test_layout_detection():
    assert cgroups.mounts_from_mountinfo(UNIFIED) == ("v2", {"": "/sys/fs/cgroup"})
    version, mounts = cgroups.mounts_from_mountinfo(HYBRID)
    assert version == "v1"
    assert mounts == {"cpu": "/sys/fs/cgroup/cpu", "memory": "/sys/fs/cgroup/memory",
                      "freezer": "/sys/fs/cgroup/freezer"}
    assert cgroups.mounts_from_mountinfo(COMOUNTED) == ("v1", {"cpu": "/sys/fs/cgroup/cpu,cpuacct",
                                                               "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"})
    with pytest.raises(cgroups.CgroupError, match="no cgroup file system"):
        cgroups.mounts_from_mountinfo("")


def test_comounted_controllers_share_one_directory(tmp_path):
    both = str(tmp_path / "cpu,cpuacct")
    group = cgroups.CgroupV1({"cpu": both, "cpuacct": both}, "/c")
    assert group.directories() == [os.path.join(both, "c")]


def test_block_io_and_hugepages(tmp_path):
    mounts = make_v1(tmp_path)
    mounts["hugetlb"] = str(tmp_path / "hugetlb")
    os.makedirs(os.path.join(mounts["blkio"], "c"))
    open(os.path.join(mounts["blkio"], "c", "blkio.bfq.weight"), "w").close()
    group = cgroups.CgroupV1(mounts, "/c")
    group.create({"blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
                  "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]})
    assert read(os.path.join(mounts["blkio"], "c", "blkio.bfq.weight")) == "300"
    assert read(os.path.join(mounts["blkio"], "c", "blkio.throttle.read_bps_device")) == "8:0 1048576"
    assert read(os.path.join(mounts["hugetlb"], "c", "hugetlb.2MB.limit_in_bytes")) == "4194304"
    root = make_v2_root(tmp_path)
    group = cgroups.CgroupV2({"": root}, "/d")
    os.makedirs(os.path.join(root, "d"))
    open(os.path.join(root, "d", "io.weight"), "w").close()
    group.create({"blockIO": {"weight": 1000, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]}})
    assert read(os.path.join(root, "d", "io.weight")) == "default 10000"
    assert read(os.path.join(root, "d", "io.max")) == "8:0 wiops=100"


def test_block_io_weight_without_a_weighted_scheduler(tmp_path):
    mounts = make_v1(tmp_path)
    group = cgroups.CgroupV1(mounts, "/c")
    with pytest.raises(cgroups.CgroupError, match="the block I/O scheduler has no weights"):
        group.create({"blockIO": {"weight": 300}})
