"""Container commands: run, create, start, stop, kill, restart, wait, pause, unpause, rm, ps,
list-containers, inspect, logs, exec and volume."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from minict.cli.options import add_registry_options
from minict.errors import InvalidArgument, MinictError
from minict.store import open_store


def _add_run_flags(parser: argparse.ArgumentParser, detachable: bool) -> None:
    add = parser.add_argument
    add("--image", metavar="IMAGE", help="image reference (or give IMAGE as the first argument)")
    add("--name", metavar="NAME", help="container name (default: a generated one)")
    if detachable:
        add("-d", "--detach", action="store_true",
            help="run in the background under a monitor process; print the container ID")
        add("--rm", action="store_true", help="remove the container (and its anonymous volumes) when it exits")
        add("--explain", action="store_true",
            help="print each kernel call of the container setup, with the reason for it, on stderr")
    add("-i", "--interactive", action="store_true",
        help="keep stdin open; a foreground run always passes stdin, a detached one gets an open, empty pipe")
    add("-t", "--tty", action="store_true", default=None,
        help="allocate a pseudo-terminal (default in the foreground: when stdin is a terminal)")
    add("--hostname", "-h", dest="hostname", metavar="NAME",
        help="hostname inside the container (default: the container name)")
    add("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
        help="set an environment variable; KEY alone passes its value from minict's environment")
    add("--env-file", action="append", default=[], metavar="FILE", help="read KEY=VALUE lines from FILE")
    add("--entrypoint", metavar="COMMAND", help="replace the image's Entrypoint (and its Cmd)")
    add("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, with an optional group name or gid")
    add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    add("--init", action="store_true", help="run a minimal init as PID 1 that forwards signals and reaps zombies")
    add("--read-only", action="store_true", help="mount the root filesystem read-only (volumes stay writable)")
    add("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro|rw]",
        help="bind a host path (SRC starts with /) or a named volume; -v DST makes an anonymous volume")
    add("--mount", action="append", default=[], metavar="type=bind|volume|tmpfs,source=..,target=..[,readonly]",
        help="mount in docker's key=value form")
    add("--tmpfs", action="append", default=[], metavar="DST[:OPTIONS]", help="mount a tmpfs, such as /run:size=64m")
    add("--network", default="host", choices=["host", "none"],
        help="host: share the host's network (default); none: only a loopback interface")
    add("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER",
        help="accepted and discarded, with a warning: the container uses the host's network, so its ports are "
        "the host's")
    add("-m", "--memory", metavar="BYTES", help="memory limit, such as 256m; going over it wakes the OOM killer")
    add("--memory-swap", metavar="BYTES", help="memory plus swap limit (-1: unlimited swap; default twice --memory)")
    add("--cpus", metavar="N", help="CPU time limit as a number of CPUs, such as 1.5")
    add("-c", "--cpu-shares", metavar="N", help="relative CPU weight, 2 to 262144 (default 1024)")
    add("--cpuset-cpus", metavar="LIST", help="CPUs the container may run on, such as 0-1,3")
    add("--pids-limit", metavar="N", help="maximum number of processes and threads (-1: unlimited)")
    add("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]", help="resource limit, such as nofile=1024:2048")
    add("--cap-add", action="append", default=[], metavar="CAP", help="add a capability, such as NET_ADMIN, or ALL")
    add("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability, or ALL")
    add("--privileged", action="store_true",
        help="all capabilities, the host's devices, writable /sys and no masked paths")
    add("--security-opt", action="append", default=[], metavar="OPTION", help="no-new-privileges, and no-op forms")
    add("--stop-signal", metavar="SIGNAL", help="signal that stop sends first (default: the image's, else SIGTERM)")
    add("--stop-timeout", metavar="SECONDS", help="seconds stop waits before SIGKILL (default 10)")
    add("--log-opt", action="append", default=[], metavar="max-size=SIZE|max-file=N",
        help="log rotation of a detached container (default max-size=10m, max-file=2)")
    add("--pull", default="missing", choices=["missing", "never", "always"],
        help="when to pull the image (default missing)")
    add("--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pull when the image is missing")
    add_registry_options(parser)
    add("--help", action="help", help="show this help message and exit")
    add("arguments", nargs=argparse.REMAINDER, metavar="COMMAND", help=argparse.SUPPRESS)


def _names(parser: argparse.ArgumentParser, one: bool = False) -> None:
    parser.add_argument("--name", dest="name", metavar="NAME", help="container name")
    parser.add_argument("names", nargs="?" if one else "*", metavar="NAME", help="container name" if one else "container names")


def add_parsers(commands) -> None:
    run = commands.add_parser(
        "run", help="create a container from an image and run it",
        description="Create a container from an image and run it, in the foreground or with -d in the background. "
        "The image is pulled first when it is missing. The exit status is the container's (128+N when a "
        "signal N ended it; 125 when minict failed, 126 when the command cannot run, 127 when it is not found).",
        usage="minict run [OPTIONS] (--image IMAGE | IMAGE) [--] [COMMAND [ARG...]]", add_help=False,
    )
    _add_run_flags(run, detachable=True)
    create = commands.add_parser(
        "create", help="create a container without starting it",
        description="Create a container from an image, as run does, and print its ID. Start it with minict start.",
        usage="minict create [OPTIONS] (--image IMAGE | IMAGE) [--] [COMMAND [ARG...]]", add_help=False)
    _add_run_flags(create, detachable=False)

    start = commands.add_parser("start", help="start an existing container (in the foreground unless -d)",
                                description="Start a created or exited container again, with the files it wrote before. "
                                "It runs in the foreground, as minict start always has, unless -d is given.")
    _names(start, one=True)
    start.add_argument("-d", "--detach", action="store_true", help="start in the background under a monitor")
    start.add_argument("-a", "--attach", action="store_true", help="run in the foreground (the default)")
    start.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (for -d)")
    start.add_argument("--explain", action="store_true", help="print each kernel call of the setup on stderr")

    rm = commands.add_parser("rm", help="remove containers", description="Remove containers and their filesystems.")
    _names(rm)
    rm.add_argument("-f", "--force", action="store_true", help="kill the container first if it is running")
    rm.add_argument("-v", "--volumes", action="store_true", help="also remove the container's anonymous volumes")

    for name, help_text in (("stop", "stop running containers: the stop signal, then SIGKILL after a timeout"),
                            ("restart", "stop containers, then start them in the background")):
        command = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        _names(command)
        command.add_argument("-t", "--time", "--timeout", dest="timeout", type=float, metavar="SECONDS",
                             help="seconds to wait before SIGKILL (default: --stop-timeout of run, else 10)")
    kill = commands.add_parser("kill", help="send a signal to containers (default SIGKILL)",
                               description="Send a signal to the init of running containers.")
    _names(kill)
    kill.add_argument("-s", "--signal", default="KILL", metavar="SIGNAL", help="name or number (default KILL)")
    for name, help_text in (("wait", "wait for containers to exit and print their exit statuses"),
                            ("pause", "freeze every process of containers"),
                            ("unpause", "thaw paused containers")):
        command = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        _names(command)

    ps = commands.add_parser("ps", help="list containers in a table",
                             description="List running containers (all with -a) in a table or as JSON.")
    ps.add_argument("-a", "--all", action="store_true", help="show all containers, not only running ones")
    ps.add_argument("-q", "--quiet", action="store_true", help="print container IDs only")
    ps.add_argument("--no-trunc", action="store_true", help="do not shorten IDs and commands")
    ps.add_argument("--format", choices=["table", "json"], default="table", help="output format (default table)")

    inspect = commands.add_parser("inspect", help="print containers' configuration and state as JSON",
                                  description="Print a JSON array describing containers: config, state, mounts.")
    _names(inspect)
    inspect.add_argument("-f", "--format", metavar="TEMPLATE",
                         help="print one field per container, such as '{{.State.Pid}}' or '{{json .Mounts}}'")

    logs = commands.add_parser("logs", help="print the output of a detached container",
                               description="Print the stdout and stderr a detached container wrote, from its log file.")
    _names(logs, one=True)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the container exits")
    logs.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines (default all)")
    logs.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")

    execute = commands.add_parser(
        "exec", help="run a command in a running container",
        description="Run a command in a running container: in its namespaces, cgroup and root, with its "
        "environment and capabilities. The exit status is the command's.",
        usage="minict exec [OPTIONS] NAME COMMAND [ARG...]")
    execute.add_argument("-i", "--interactive", action="store_true", help="pass stdin to the command")
    execute.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    execute.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]", help="set a variable")
    execute.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read KEY=VALUE lines from FILE")
    execute.add_argument("-u", "--user", metavar="USER[:GROUP]", help="run as this user (default: the container's)")
    execute.add_argument("-w", "--workdir", metavar="DIR", help="working directory (default: the container's)")
    execute.add_argument("--privileged", action="store_true", help="give the command all capabilities")
    execute.add_argument("--explain", action="store_true", help="print each kernel call on stderr")
    execute.add_argument("container", metavar="NAME", help="container name")
    execute.add_argument("arguments", nargs=argparse.REMAINDER, metavar="COMMAND", help="command and arguments")

    volume = commands.add_parser("volume", help="manage volumes: create, ls, inspect, rm, prune",
                                 description="Manage named and anonymous volumes kept under the state directory.")
    actions = volume.add_subparsers(dest="volume_command", metavar="ACTION")
    actions.required = True
    create_volume = actions.add_parser("create", help="create a named volume")
    create_volume.add_argument("volume_name", metavar="NAME")
    listing = actions.add_parser("ls", help="list volumes")
    listing.add_argument("-q", "--quiet", action="store_true", help="print names only")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    inspect_volume = actions.add_parser("inspect", help="print volumes as JSON")
    inspect_volume.add_argument("volume_names", nargs="+", metavar="NAME")
    remove_volume = actions.add_parser("rm", help="remove volumes no container uses")
    remove_volume.add_argument("volume_names", nargs="+", metavar="NAME")
    remove_volume.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    prune = actions.add_parser("prune", help="remove unused anonymous volumes (all unused ones with -a)")
    prune.add_argument("-a", "--all", action="store_true", help="remove unused named volumes too")
    prune.add_argument("-f", "--force", action="store_true", help="accepted for docker compatibility")


def list_containers(args: argparse.Namespace) -> int:
    from minict.containers import list_names

    store = open_store(args.state_root)
    print(json.dumps(list_names(store), indent="\t"))
    return 0


def _pull_for_run(args: argparse.Namespace):
    def pull(text: str) -> dict:
        from minict.cli.images import _client_options
        from minict.platform import parse_platform
        from minict.progress import make_progress
        from minict.pull import PullOptions, Puller

        options = PullOptions(platform=parse_platform(args.platform) if args.platform else None)
        progress = make_progress(quiet=False)
        with progress:
            return Puller(open_store(args.state_root), _client_options(args), options, progress).pull(text)
    return pull


def _env_entries(values: list[str], files: list[str]) -> list[str]:
    """-e and --env-file; as in docker, "-e NAME" without "=" passes NAME's value from this environment."""
    from minict.runflags import parse_env_file

    env = []
    for path in files:
        env += parse_env_file(path)
    for entry in values:
        if "=" in entry:
            env.append(entry)
        elif entry in os.environ:
            env.append(f"{entry}={os.environ[entry]}")
    return env


def _run_options(args: argparse.Namespace, arguments: list[str], terminal: bool):
    """Check every run flag and build RunOptions; raises InvalidArgument before anything is pulled."""
    from minict import runflags as rf
    from minict.spec import RunOptions

    resources: dict = {}
    memory = rf.parse_memory(args.memory) if args.memory else None
    if memory is not None:
        resources["memory"] = {"limit": memory}
        if args.memory_swap is not None:
            resources["memory"]["swap"] = rf.parse_memory_swap(args.memory_swap, memory)
        elif os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
            resources["memory"]["swap"] = 2 * memory  # docker's default where swap is accounted
    elif args.memory_swap is not None:
        rf.parse_memory_swap(args.memory_swap, None)
    cpu: dict = {}
    if args.cpus:
        cpu.update(period=100000, quota=int(rf.parse_cpus(args.cpus) * 100000))
    if args.cpu_shares:
        cpu["shares"] = rf.parse_int(args.cpu_shares, "--cpu-shares", 2, 262144)
    if args.cpuset_cpus:
        cpu["cpus"] = rf.parse_cpuset(args.cpuset_cpus)
    if cpu:
        resources["cpu"] = cpu
    if args.pids_limit is not None:
        resources["pids"] = {"limit": rf.parse_int(args.pids_limit, "--pids-limit", -1)}
    mounts = [rf.parse_volume(v) for v in args.volume] + [rf.parse_mount(m) for m in args.mount]
    mounts += [rf.parse_tmpfs(t) for t in args.tmpfs]
    log_options = {}
    for option in args.log_opt:
        key, _, value = option.partition("=")
        if key == "max-size":
            log_options["max_size"] = rf.parse_size(value, "--log-opt max-size")
            if log_options["max_size"] < 4096:
                raise InvalidArgument(f"invalid --log-opt {option!r}: use at least 4k")
        elif key == "max-file":
            log_options["max_files"] = rf.parse_int(value, "--log-opt max-file", 1, 100)
        else:
            raise InvalidArgument(f"invalid --log-opt {option!r}: use max-size=SIZE or max-file=N")
    if args.publish:
        if args.network == "none":
            raise InvalidArgument(f"invalid -p {args.publish[0]!r}: a container with --network none has no ports "
                                  "to publish; drop -p or use the host network")
        print(f"minict: warning: published ports are discarded ({', '.join(args.publish)}): the container shares "
              "the host's network, so it listens on the host's ports directly", file=sys.stderr)
    no_new_privileges = False
    for option in args.security_opt:
        no_new_privileges = rf.parse_security_opt(option) or no_new_privileges
    entrypoint = None
    if args.entrypoint is not None:
        # As in docker, --entrypoint "" clears the image's Entrypoint (and with it the Cmd).
        entrypoint = [args.entrypoint] if args.entrypoint else []
    return RunOptions(
        command=arguments,
        entrypoint=entrypoint,
        env=_env_entries(args.env, args.env_file),
        hostname=args.hostname,
        user=args.user,
        workdir=args.workdir,
        network=args.network,
        terminal=terminal,
        interactive=args.interactive,
        read_only=args.read_only,
        init=args.init,
        privileged=args.privileged,
        no_new_privileges=no_new_privileges,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        ulimits=[rf.parse_ulimit(u) for u in args.ulimit],
        mounts=mounts,
        resources=resources,
        stop_signal=args.stop_signal,
        stop_timeout=rf.parse_int(args.stop_timeout, "--stop-timeout", 0) if args.stop_timeout is not None else None,
        log_options=log_options,
    )


def _create_from_args(args: argparse.Namespace, detached: bool) -> tuple[str, object]:
    from minict import containers

    arguments = list(args.arguments)
    image = args.image
    if image is None:
        if not arguments or arguments[0] == "--":
            raise InvalidArgument(f"no image given; use: minict {args.command} [OPTIONS] IMAGE [COMMAND [ARG...]]")
        image = arguments.pop(0)
    if arguments and arguments[0] == "--":
        arguments.pop(0)
    if args.tty is not None:
        terminal = args.tty
    else:
        terminal = not detached and args.command == "run" and sys.stdin.isatty()
    options = _run_options(args, arguments, terminal)
    store = open_store(args.state_root)
    name = args.name or containers.generate_name()
    record = containers.create(store, name, image, options, pull_policy=args.pull, pull_function=_pull_for_run(args))
    return name, record


def run(args: argparse.Namespace) -> int:
    from minict import containers

    name, record = _create_from_args(args, args.detach)
    store = open_store(args.state_root)
    if args.detach:
        try:
            containers.start(store, name, detach=True, explain=args.explain, interactive=args.interactive,
                             remove_after=args.rm)
        except MinictError:
            if args.rm:
                containers.remove(store, name, force=True, volumes=True)
            raise
        print(record["id"])
        return 0
    try:
        return containers.start(store, name, explain=args.explain)
    finally:
        if args.rm:
            containers.remove(store, name, force=True, volumes=True)


def create(args: argparse.Namespace) -> int:
    _, record = _create_from_args(args, False)
    print(record["id"])
    return 0


def _one_name(args: argparse.Namespace) -> str:
    name = args.name or args.names
    if isinstance(name, list):
        name = name[0] if name else None
    if not name:
        raise InvalidArgument(f"no container given; use: minict {args.command} --name NAME")
    return name


def _all_names(args: argparse.Namespace) -> list[str]:
    names = ([args.name] if args.name else []) + list(args.names or [])
    if not names:
        raise InvalidArgument(f"no container given; use: minict {args.command} NAME [NAME...]")
    return names


def _each(args: argparse.Namespace, action) -> int:
    """Apply `action` to every named container; report failures one line each, as docker does."""
    names = _all_names(args)
    status = 0
    for name in names:
        try:
            action(name)
        except MinictError as error:
            if len(names) == 1:
                raise
            print(f"minict: error: {error}", file=sys.stderr)
            status = 1
    return status


def start(args: argparse.Namespace) -> int:
    from minict import containers

    name = _one_name(args)
    store = open_store(args.state_root)
    if args.detach:
        containers.start(store, name, detach=True, explain=args.explain, interactive=args.interactive)
        print(name)
        return 0
    return containers.start(store, name, explain=args.explain)


def rm(args: argparse.Namespace) -> int:
    from minict import containers

    store = open_store(args.state_root)
    return _each(args, lambda name: containers.remove(store, name, force=args.force, volumes=args.volumes))


def stop(args: argparse.Namespace) -> int:
    from minict import containers

    store = open_store(args.state_root)

    def action(name: str) -> None:
        containers.stop(store, name, args.timeout)
        print(name)
    return _each(args, action)


def restart(args: argparse.Namespace) -> int:
    from minict import containers

    store = open_store(args.state_root)

    def action(name: str) -> None:
        containers.stop(store, name, args.timeout)
        containers.start(store, name, detach=True)
        print(name)
    return _each(args, action)


def kill(args: argparse.Namespace) -> int:
    from minict import containers
    from minict.spec import signal_number

    signum = signal_number(args.signal)
    store = open_store(args.state_root)

    def action(name: str) -> None:
        containers.kill(store, name, signum)
        print(name)
    return _each(args, action)


def wait(args: argparse.Namespace) -> int:
    from minict import containers

    store = open_store(args.state_root)

    def action(name: str) -> None:
        code = containers.wait(store, name)
        if code is None:
            raise MinictError(f"the exit status of {name!r} is unknown: its monitor died before it exited")
        print(code, flush=True)
    return _each(args, action)


def pause(args: argparse.Namespace) -> int:
    from minict import containers

    store = open_store(args.state_root)

    def action(name: str) -> None:
        containers.pause(store, name, paused=args.command == "pause")
        print(name)
    return _each(args, action)


def ps(args: argparse.Namespace) -> int:
    from minict.inspect import human_duration, summaries

    rows = summaries(open_store(args.state_root))
    if not args.all:
        rows = [row for row in rows if row["State"] in ("running", "paused")]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.quiet:
        for row in rows:
            print(row["Id"] if args.no_trunc else row["Id"][:12])
        return 0
    now = time.time()
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for row in rows:
        command = " ".join(row["Command"])
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        table.append((row["Id"] if args.no_trunc else row["Id"][:12], row["Image"], f'"{command}"',
                      human_duration(now - row["Created"]) + " ago", row["Status"], row["Name"]))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("   ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def inspect(args: argparse.Namespace) -> int:
    from minict.inspect import describe, render_template

    store = open_store(args.state_root)
    documents = []
    status = 0
    for name in _all_names(args):
        try:
            documents.append(describe(store, name))
        except MinictError as error:
            print(f"minict: error: {error}", file=sys.stderr)
            status = 1
    if args.format:
        for document in documents:
            print(render_template(args.format, document))
    else:
        print(json.dumps(documents, indent=4))
    return status


def logs(args: argparse.Namespace) -> int:
    from minict.inspect import print_logs

    tail = None
    if args.tail != "all":
        try:
            tail = int(args.tail)
        except ValueError:
            raise InvalidArgument(f"invalid --tail {args.tail!r}: use a number of lines or all") from None
        if tail < 0:
            raise InvalidArgument(f"invalid --tail {args.tail!r}: use a number of lines or all")
    return print_logs(open_store(args.state_root), _one_name(args), follow=args.follow, tail=tail,
                      timestamps=args.timestamps)


def exec_command(args: argparse.Namespace) -> int:
    from minict import containers

    arguments = list(args.arguments)
    if arguments and arguments[0] == "--":
        arguments.pop(0)
    if not arguments:
        raise InvalidArgument("no command given; use: minict exec [OPTIONS] NAME COMMAND [ARG...]")
    env = _env_entries(args.env, args.env_file)
    for entry in env:
        if entry.startswith("="):
            raise InvalidArgument(f"invalid environment entry {entry!r}: use KEY=VALUE")
    if args.workdir is not None and not args.workdir.startswith("/"):
        raise InvalidArgument(f"invalid working directory {args.workdir!r}: it must be an absolute path")
    return containers.exec_in(open_store(args.state_root), args.container, arguments, env=env, user=args.user,
                              workdir=args.workdir, terminal=args.tty, interactive=args.interactive,
                              privileged=args.privileged, explain=args.explain)


def volume(args: argparse.Namespace) -> int:
    from minict import volumes

    store = open_store(args.state_root)
    action = args.volume_command
    if action == "create":
        print(volumes.create(store, args.volume_name))
    elif action == "ls":
        records = volumes.records(store)
        if args.format == "json":
            print(json.dumps(records, indent=2))
        elif args.quiet:
            for record in records:
                print(record["name"])
        else:
            print("DRIVER    VOLUME NAME")
            for record in records:
                print(f"local     {record['name']}")
    elif action == "inspect":
        by_name = {record["name"]: record for record in volumes.records(store)}
        missing = [name for name in args.volume_names if name not in by_name]
        if missing:
            raise MinictError(f"no such volume: {missing[0]}")
        print(json.dumps([by_name[name] for name in args.volume_names], indent=2))
    elif action == "rm":
        for name in volumes.remove(store, args.volume_names, force=args.force):
            print(name)
    elif action == "prune":
        removed = volumes.prune(store, everything=args.all)
        for name in removed:
            print(name)
        print(f"Removed {len(removed)} volume{'s' if len(removed) != 1 else ''}")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    handlers = {"list-containers": list_containers, "run": run, "create": create, "start": start, "rm": rm,
                "stop": stop, "restart": restart, "kill": kill, "wait": wait, "pause": pause, "unpause": pause,
                "ps": ps, "inspect": inspect, "logs": logs, "exec": exec_command, "volume": volume}
    return handlers[args.command](args)
