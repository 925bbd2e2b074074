"""Container commands: run, start, rm, list-containers."""

from __future__ import annotations

import argparse
import json
import os
import sys

from minict.cli.options import add_registry_options
from minict.errors import InvalidArgument
from minict.store import open_store


def add_parsers(commands) -> None:
    run = commands.add_parser(
        "run", help="create a container from an image and run it in the foreground",
        description="Create a container from an image and run it in the foreground. The image is pulled first "
        "when it is missing. The exit status is the container's (128+N when a signal N ended it; "
        "125 when minict failed, 126 when the command cannot run, 127 when it is not found).",
        usage="minict run [OPTIONS] (--image IMAGE | IMAGE) [--] [COMMAND [ARG...]]", add_help=False,
    )
    run.add_argument("--image", metavar="IMAGE", help="image reference (or give IMAGE as the first argument)")
    run.add_argument("--name", metavar="NAME", help="container name (default: a generated one)")
    run.add_argument("--hostname", "-h", dest="hostname", metavar="NAME",
                     help="hostname inside the container (default: the container name)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                     help="set an environment variable; KEY alone passes its value from minict's environment")
    run.add_argument("--entrypoint", metavar="COMMAND", help="replace the image's Entrypoint (and its Cmd)")
    run.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, with an optional group name or gid")
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    run.add_argument("--network", default="host", choices=["host", "none"],
                     help="host: share the host's network (default); none: only a loopback interface")
    run.add_argument("--pull", default="missing", choices=["missing", "never", "always"],
                     help="when to pull the image (default missing)")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("-t", "--tty", action="store_true", default=None,
                     help="allocate a pseudo-terminal (default: when stdin is a terminal)")
    run.add_argument("--explain", action="store_true",
                     help="print each kernel call of the container setup, with the reason for it, on stderr")
    run.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pull when the image is missing")
    add_registry_options(run)
    run.add_argument("--help", action="help", help="show this help message and exit")
    run.add_argument("arguments", nargs=argparse.REMAINDER, metavar="COMMAND", help=argparse.SUPPRESS)

    start = commands.add_parser("start", help="run an existing container again in the foreground",
                                description="Run an existing, stopped container again, with the files it wrote before.")
    start.add_argument("--name", dest="name", metavar="NAME", help="container name")
    start.add_argument("names", nargs="?", metavar="NAME", help=argparse.SUPPRESS)
    start.add_argument("--explain", action="store_true", help="print each kernel call of the setup on stderr")

    rm = commands.add_parser("rm", help="remove a container", description="Remove a container and its filesystem.")
    rm.add_argument("--name", dest="name", metavar="NAME", help="container name")
    rm.add_argument("names", nargs="*", metavar="NAME", help="more container names")
    rm.add_argument("-f", "--force", action="store_true", help="kill the container first if it is running")


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


def run(args: argparse.Namespace) -> int:
    from minict import containers
    from minict.spec import RunOptions

    arguments = list(args.arguments)
    image = args.image
    if image is None:
        if not arguments or arguments[0] == "--":
            raise InvalidArgument("no image given; use: minict run --image IMAGE [--name NAME] [-- COMMAND]")
        image = arguments.pop(0)
    if arguments and arguments[0] == "--":
        arguments.pop(0)
    terminal = args.tty if args.tty is not None else sys.stdin.isatty()
    # As in docker, "-e NAME" without "=" passes NAME's value from this environment, if it is set.
    env = []
    for entry in args.env:
        if "=" in entry:
            env.append(entry)
        elif entry in os.environ:
            env.append(f"{entry}={os.environ[entry]}")
    options = RunOptions(
        command=arguments,
        entrypoint=[args.entrypoint] if args.entrypoint is not None else None,
        env=env,
        hostname=args.hostname,
        user=args.user,
        workdir=args.workdir,
        network=args.network,
        terminal=terminal,
    )
    store = open_store(args.state_root)
    name = args.name or containers.generate_name()
    containers.create(store, name, image, options, pull_policy=args.pull, pull_function=_pull_for_run(args))
    try:
        return containers.start(store, name, explain=args.explain)
    finally:
        if args.rm:
            containers.remove(store, name, force=True)


def start(args: argparse.Namespace) -> int:
    from minict import containers

    name = args.name or args.names
    if not name:
        raise InvalidArgument("no container given; use: minict start --name NAME")
    return containers.start(open_store(args.state_root), name, explain=args.explain)


def rm(args: argparse.Namespace) -> int:
    from minict import containers
    from minict.errors import MinictError

    names = ([args.name] if args.name else []) + list(args.names)
    if not names:
        raise InvalidArgument("no container given; use: minict rm --name NAME")
    store = open_store(args.state_root)
    status = 0
    for name in names:
        try:
            containers.remove(store, name, force=args.force)
        except MinictError as error:
            if len(names) == 1:
                raise
            print(f"minict: error: {error}", file=sys.stderr)
            status = 1
    return status


def dispatch(args: argparse.Namespace) -> int:
    handlers = {"list-containers": list_containers, "run": run, "start": start, "rm": rm}
    return handlers[args.command](args)


