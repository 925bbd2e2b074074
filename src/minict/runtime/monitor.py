"""The monitor of a detached container: one small process per container, no daemon.

`minict run -d` forks the container init as usual, then replaces the
forking process with this program (execve keeps children, so the monitor
stays the init's parent and can wait for it). The monitor:

- copies the container's stdout and stderr (or its terminal) into the log
  file, with rotation (minict.runtime.logfile);
- waits for the init, then records the exit status, the time and whether
  the OOM killer struck in state.json, under the container's lock;
- removes the container's cgroup, and with --rm the container itself.

It runs as `python -I -S monitor.py PACKAGE_DIR SETTINGS`: no site-packages,
and while the container runs only the copy loop's modules, so its resident
set is about 10 MB (podman's conmon, written in C, measured 2 MB on the same host). Settings arrive
as one JSON argument; the descriptors it names were inherited across execve.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

DRAIN_SECONDS = 2.0  # after the init exits, how long to wait for the last output


def _exit_code(wait_status: int) -> int:
    return 128 + os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def copy_until_exit(pid: int, sources: dict[int, str], writer) -> int:
    """Copy output into the log until the init has exited and its output is drained; return its status."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    status = None
    deadline = 0.0
    while True:
        if status is None:
            finished, wait_status = os.waitpid(pid, os.WNOHANG)
            if finished:
                status = _exit_code(wait_status)
                deadline = time.monotonic() + DRAIN_SECONDS
        if status is not None and (not sources or time.monotonic() >= deadline):
            break
        timeout = None if status is None else max(0.0, deadline - time.monotonic())
        try:
            ready = select.select(list(sources) + [wake_read], [], [], timeout)[0]
        except InterruptedError:
            continue
        for fd in ready:
            if fd == wake_read:
                while True:
                    try:
                        if not os.read(wake_read, 512):
                            break
                    except BlockingIOError:
                        break
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""  # EIO: the last holder of the terminal closed it
            if data:
                writer.write(sources[fd], data)
            else:
                os.close(fd)
                del sources[fd]
    signal.set_wakeup_fd(-1)
    return status


def main(settings: dict) -> None:
    from minict.runtime.logfile import LogWriter

    try:
        with open("/proc/self/comm", "w") as file:
            file.write("minict-monitor")
    except OSError:
        pass
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    pid = settings["pid"]
    writer = LogWriter(settings["log"], settings["max_size"], settings["max_files"])
    sources = {int(fd): stream for fd, stream in settings["fds"].items()}
    status = copy_until_exit(pid, sources, writer)
    writer.close()
    # Imported only now, so that while the container runs the monitor loads only the copy loop.
    from minict.runtime.cgroups import CgroupError, open_cgroup
    from minict.state import record_exit

    oom_killed = False
    if settings.get("cgroup"):
        try:
            oom_killed = open_cgroup(settings["cgroup"]).release()
        except CgroupError:
            pass  # no cgroup tree is mounted any more
    record_exit(settings["directory"], pid, status, oom_killed)
    remove = settings.get("remove")
    if remove:
        # --rm: become `minict rm`, which takes the lock and deletes the container and its anonymous volumes.
        python = sys.executable
        os.execv(python, [python, "-m", "minict", "--root", remove["root"], "rm", "--force", "--volumes",
                          remove["name"]])


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    main(json.loads(sys.argv[2]))
