"""Container commands: run, start, rm, list-containers."""

from __future__ import annotations

import argparse
import json
import os

from minict.store import open_store


def add_parsers(commands) -> None:
    run = commands.add_parser("run", help="create a container from an image and run it in the foreground",
                              description="Create a container from an image and run it in the foreground.")
    run.add_argument("--image", required=True, metavar="IMAGE", help="image reference")
    run.add_argument("--name", required=True, metavar="NAME", help="container name")
    start = commands.add_parser("start", help="run an existing container again",
                                description="Run an existing, stopped container again with the same filesystem.")
    start.add_argument("--name", required=True, metavar="NAME", help="container name")
    rm = commands.add_parser("rm", help="remove a container", description="Remove a container and its filesystem.")
    rm.add_argument("--name", required=True, metavar="NAME", help="container name")


def list_containers(args: argparse.Namespace) -> int:
    store = open_store(args.state_root)
    names = sorted(
        name for name in os.listdir(store.containers)
        if os.path.exists(os.path.join(store.containers, name, "container.json"))
    )
    print(json.dumps(names, indent="\t"))
    return 0


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "list-containers":
        return list_containers(args)
    from minict.errors import MinictError

    raise MinictError(f"minict {args.command} is not available yet")
