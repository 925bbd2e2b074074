"""The `minict-runc` command: runc's global options and verbs, as podman and containerd call them.

    minict-runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB ...

Errors go to stderr and, with --log, to that file as well (one JSON object
per line with --log-format json, which containerd's shim reads back).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from minict import __version__
from minict.errors import InvalidArgument, MinictError

SPEC_VERSION = "1.0.2"


# Global options that take a value, so the verb is not mistaken for one.
_GLOBAL_VALUES = ("--root", "--log", "--log-format", "--rootless", "--criu")


def _verb(argv: list[str]) -> str | None:
    """Return the verb, the first argument that is not a global option or its value, or None for --help."""
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument in _GLOBAL_VALUES:
            index += 2
        elif argument in ("-h", "--help", "-v", "--version"):
            return None
        elif argument.startswith("-"):
            index += 1
        else:
            return argument
    return None


def build_parser(prog: str = "minict-runc", only: str | None = None) -> argparse.ArgumentParser:
    """Build the parser, with only the subparser of verb `only` when it is given (as each container start does)."""
    from minict.cli.options import HelpFormatter, OnlyCommand

    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=HelpFormatter, description="An OCI runtime with runc's command line, built on minict's runtime code.")
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help=f"directory for container state (default {'$XDG_RUNTIME_DIR/minict-runc'} for "
                        "non-root, else /run/minict-runc)")
    parser.add_argument("--log", metavar="FILE", help="also write errors to FILE")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="format of --log")
    parser.add_argument("--debug", action="store_true", help="print Python tracebacks of errors")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="accepted for compatibility; minict-runc manages cgroupfs paths only")
    parser.add_argument("--rootless", default="auto", help="accepted for compatibility")
    parser.add_argument("--criu", help=argparse.SUPPRESS)
    verbs = OnlyCommand(parser.add_subparsers(dest="verb", metavar="VERB"), only)

    create = verbs.add_parser("create", help="create a container, stopped before its command runs")
    run = verbs.add_parser("run", help="create and start a container, and wait for it unless --detach")
    for command in (create, run):
        command.add_argument("container_id", nargs="?", metavar="ID")
        command.add_argument("--bundle", "-b", default=".", metavar="DIR", help="bundle directory (default .)")
        command.add_argument("--pid-file", metavar="FILE", help="write the init's pid to FILE")
        command.add_argument("--console-socket", metavar="SOCKET",
                             help="unix socket that receives the pty master (process.terminal)")
        command.add_argument("--no-pivot", action="store_true", help="accepted; pivot_root is always used")
        command.add_argument("--no-new-keyring", action="store_true", help="accepted; no session keyring is made")
        command.add_argument("--preserve-fds", type=int, default=0, metavar="N", help="not supported beyond 0")
    run.add_argument("--detach", "-d", action="store_true", help="return once the container runs")

    for name, help_text in (("start", "start a created container"), ("state", "print a container's state as JSON"),
                            ("pause", "freeze every process of a container"), ("resume", "thaw a paused container")):
        command = verbs.add_parser(name, help=help_text)
        command.add_argument("container_id", nargs="?", metavar="ID")

    kill = verbs.add_parser("kill", help="send a signal (default SIGTERM) to the container's init")
    kill.add_argument("container_id", nargs="?", metavar="ID")
    kill.add_argument("signal", nargs="?", default="TERM", metavar="SIGNAL", help="name or number, with or without SIG")
    kill.add_argument("--all", "-a", action="store_true", help="signal every process of the container")

    delete = verbs.add_parser("delete", help="delete a stopped or created container")
    delete.add_argument("container_id", nargs="?", metavar="ID")
    delete.add_argument("--force", "-f", action="store_true", help="kill it first if it runs")

    ps = verbs.add_parser("ps", help="list the processes of a container")
    ps.add_argument("container_id", nargs="?", metavar="ID")
    ps.add_argument("--format", "-f", choices=["table", "json"], default="table")

    listing = verbs.add_parser("list", help="list containers")
    listing.add_argument("--format", "-f", choices=["table", "json"], default="table")
    listing.add_argument("--quiet", "-q", action="store_true", help="print IDs only")

    update = verbs.add_parser("update", help="change a container's cgroup limits")
    update.add_argument("container_id", nargs="?", metavar="ID")
    update.add_argument("--resources", "-r", metavar="FILE", help="LinuxResources JSON from FILE, or - for stdin")
    update.add_argument("--memory", metavar="BYTES")
    update.add_argument("--memory-swap", metavar="BYTES")
    update.add_argument("--cpu-shares", type=int, metavar="N")
    update.add_argument("--cpu-quota", type=int, metavar="US")
    update.add_argument("--cpu-period", type=int, metavar="US")
    update.add_argument("--cpuset-cpus", metavar="LIST")
    update.add_argument("--pids-limit", type=int, metavar="N")

    execute = verbs.add_parser("exec", help="run a new process in a running container")
    execute.add_argument("container_id", nargs="?", metavar="ID")
    execute.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    execute.add_argument("--process", "-p", metavar="FILE", help="OCI process JSON")
    execute.add_argument("--detach", "-d", action="store_true", help="return once the process runs")
    execute.add_argument("--pid-file", metavar="FILE", help="write the process's pid to FILE")
    execute.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-terminal")
    execute.add_argument("--console-socket", metavar="SOCKET", help="unix socket that receives the pty master")
    execute.add_argument("--cwd", metavar="DIR", help="working directory")
    execute.add_argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE")
    execute.add_argument("--user", "-u", metavar="UID[:GID]")
    execute.add_argument("--additional-gids", "-g", action="append", default=[], type=int, metavar="GID")
    execute.add_argument("--cap", "-c", action="append", default=[], metavar="CAP", help="add a capability")
    execute.add_argument("--no-new-privs", action="store_true")
    execute.add_argument("--process-label", help=argparse.SUPPRESS)
    execute.add_argument("--apparmor", help=argparse.SUPPRESS)
    execute.add_argument("--preserve-fds", type=int, default=0, help=argparse.SUPPRESS)

    spec = verbs.add_parser("spec", help="write a default config.json")
    spec.add_argument("--bundle", "-b", default=".", metavar="DIR")
    spec.add_argument("--rootless", action="store_true", help="a spec for a user namespace")
    verbs.add_parser("features", help="print the features this runtime implements as JSON")
    if only is not None and not verbs.built:
        return build_parser(prog)  # an unknown verb: the full parser's error lists the valid ones
    return parser


def _need_id(args: argparse.Namespace) -> str:
    if not args.container_id:
        raise InvalidArgument(f"{args.verb}: missing container ID; use minict-runc {args.verb} ID")
    return args.container_id


def _default_root() -> str:
    from minict.runc.containers import DEFAULT_ROOT

    if os.geteuid() != 0 and os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "minict-runc")
    return DEFAULT_ROOT


def _log_error(args: argparse.Namespace, message: str) -> None:
    print(f"minict-runc: {message}", file=sys.stderr)
    if not args.log:
        return
    from minict.runtime.logfile import timestamp

    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message, "time": timestamp()})
    else:
        line = f'time="{timestamp()}" level=error msg="{message}"'
    try:
        with open(args.log, "a") as file:
            file.write(line + "\n")
    except OSError:
        pass


def _read_json(path: str, what: str):
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path) as file:
            return json.load(file)
    except OSError as error:
        raise InvalidArgument(f"failed to read {what} {path}: {error.strerror}") from None
    except ValueError as error:
        raise InvalidArgument(f"invalid {what} {path}: {error}") from None


def _exec_process(args: argparse.Namespace, spec: dict) -> dict:
    from minict.linux.capabilities import NAMES

    if args.process:
        process = _read_json(args.process, "--process file")
        if not isinstance(process, dict) or not process.get("args"):
            raise InvalidArgument(f"invalid --process file {args.process}: it needs a non-empty args array")
        return process
    command = list(args.command)
    if command and command[0] == "--":
        command.pop(0)
    if not command:
        raise InvalidArgument("exec: missing command; give --process FILE or the command after the ID")
    process = json.loads(json.dumps(spec.get("process") or {}))
    process.update(args=command, terminal=args.tty)
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        from minict.spec import merge_env

        process["env"] = merge_env(process.get("env") or [], args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise InvalidArgument(f"invalid --user {args.user!r}: use numeric UID[:GID]") from None
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = args.additional_gids
    for capability in args.cap:
        name = capability.upper() if capability.upper().startswith("CAP_") else "CAP_" + capability.upper()
        if name not in NAMES:
            raise InvalidArgument(f"unknown capability {capability!r}")
        sets = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            if name not in sets.setdefault(kind, []):
                sets[kind].append(name)
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    return process


def default_spec(rootless: bool) -> dict:
    """Return runc's default config.json: sh in ./rootfs with a terminal, docker's default isolation."""
    from minict.spec import MASKED_PATHS, OCI_VERSION, READONLY_PATHS, default_mounts

    capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {kind: list(capabilities) for kind in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minict",
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if rootless:
        uid, gid = os.geteuid(), os.getegid()
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        del spec["linux"]["resources"]
    return spec


def features() -> dict:
    from minict.linux.capabilities import NAMES
    from minict.runtime.hooks import HOOK_NAMES
    from minict.runtime.init import NAMESPACE_FLAGS
    from minict.runtime.mounts import _FLAG_OPTIONS, _PROPAGATION_OPTIONS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted(list(_FLAG_OPTIONS) + list(_PROPAGATION_OPTIONS) + ["tmpcopyup"]),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.minict.version": __version__},
    }


def dispatch(args: argparse.Namespace) -> int:
    from minict.runc import containers as c
    from minict.oci import signal_number

    runtime = c.Runtime(args.root or _default_root())
    verb = args.verb
    if verb in ("create", "run"):
        container_id = _need_id(args)
        if args.preserve_fds:
            raise InvalidArgument("--preserve-fds is not supported; pass file descriptors another way")
        if verb == "create":
            c.create(runtime, container_id, args.bundle, args.pid_file, args.console_socket)
            return 0
        return run(runtime, container_id, args)
    if verb == "start":
        c.start(runtime, _need_id(args))
    elif verb == "state":
        directory, state, spec = runtime.load(_need_id(args))
        print(json.dumps(c.state_document(directory, state, spec), indent=2))
    elif verb == "kill":
        c.kill(runtime, _need_id(args), signal_number(args.signal, "signal"), everything=args.all)
    elif verb == "delete":
        c.delete(runtime, _need_id(args), force=args.force)
    elif verb in ("pause", "resume"):
        c.pause(runtime, _need_id(args), verb == "pause")
    elif verb == "ps":
        pids = c.processes(runtime, _need_id(args))
        if args.format == "json":
            print(json.dumps(pids))
        else:
            print("PID")
            for pid in pids:
                print(pid)
    elif verb == "list":
        rows = []
        for container_id in runtime.ids():
            try:
                directory, state, spec = runtime.load(container_id)
            except MinictError:
                continue
            rows.append(c.state_document(directory, state, spec))
        if args.format == "json":
            print(json.dumps(rows))
        elif args.quiet:
            for row in rows:
                print(row["id"])
        else:
            print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} CREATED")
            for row in rows:
                print(f"{row['id']:<20} {row['pid']:<8} {row['status']:<10} {row['bundle']:<40} {row['created']}")
    elif verb == "update":
        return update(runtime, _need_id(args), args)
    elif verb == "exec":
        container_id = _need_id(args)
        _, _, spec = runtime.load(container_id)
        process = _exec_process(args, spec)
        if args.tty:
            process["terminal"] = True
        return c.exec_process(runtime, container_id, process, detach=args.detach, pid_file=args.pid_file,
                              console_socket=args.console_socket)
    elif verb == "spec":
        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path):
            raise MinictError(f"{path} already exists; remove it first")
        try:
            with open(path, "w") as file:
                json.dump(default_spec(args.rootless), file, indent=2)
                file.write("\n")
        except OSError as error:
            raise MinictError(f"failed to write {path}: {error.strerror}; create the bundle directory first") from None
    elif verb == "features":
        print(json.dumps(features(), indent=2))
    return 0


def run(runtime, container_id: str, args: argparse.Namespace) -> int:
    """create, then start; without --detach wait for the init and delete the container after it exits."""
    from minict.runc import containers as c
    from minict.runtime import launcher

    held = None if args.detach else launcher.HeldSignals()
    try:
        pid = c.create(runtime, container_id, args.bundle, args.pid_file, args.console_socket)
        try:
            c.start(runtime, container_id)
        except BaseException:
            c.delete(runtime, container_id, force=True)
            raise
    except BaseException:
        if held is not None:
            held.release()
        raise
    if args.detach:
        return 0
    status = launcher.wait(pid, None, held)
    c.delete(runtime, container_id, force=True)
    return status


def update(runtime, container_id: str, args: argparse.Namespace) -> int:
    from minict import runflags as rf
    from minict.runc import containers as c

    resources: dict = _read_json(args.resources, "--resources") if args.resources else {}
    if not isinstance(resources, dict):
        raise InvalidArgument("invalid --resources: it must be a LinuxResources JSON object")
    if args.memory:
        resources.setdefault("memory", {})["limit"] = rf.parse_size(args.memory, "--memory")
    if args.memory_swap:
        resources.setdefault("memory", {})["swap"] = rf.parse_size(args.memory_swap, "--memory-swap")
    for key, value in (("shares", args.cpu_shares), ("quota", args.cpu_quota), ("period", args.cpu_period),
                       ("cpus", args.cpuset_cpus)):
        if value is not None:
            resources.setdefault("cpu", {})[key] = value
    if args.pids_limit is not None:
        resources["pids"] = {"limit": args.pids_limit}
    c.update(runtime, container_id, resources)
    return 0


def main(argv: list[str] | None = None, prog: str = "minict-runc") -> int:
    parser = build_parser(prog, _verb(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if args.version:
        print(f"{prog} version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    if not args.verb:
        parser.print_help(sys.stderr)
        return 2
    try:
        return dispatch(args)
    except MinictError as error:
        if args.debug:
            raise
        _log_error(args, str(error))
        return 1
    except OSError as error:
        if args.debug:
            raise
        _log_error(args, str(error))
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
