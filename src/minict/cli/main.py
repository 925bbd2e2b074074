"""Entry point of the `minict` command: global options, subcommands, errors and exit codes.

Only argparse and the standard library load here. Each subcommand imports
what it needs when it runs, so starting a container does not pay for the
registry client, which only `pull` and `login` use.
"""

from __future__ import annotations

import argparse
import os
import sys

from minict import __version__
from minict.cli.options import HelpFormatter, OnlyCommand, add_registry_options


def _command_name(argv: list[str]) -> str | None:
    """Return the first argument that is not a global option, or None."""
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument in ("--root", "--log-level"):
            index += 2
            continue
        if argument.startswith("-"):
            if argument in ("-h", "--help", "--version"):
                return None
            index += 1
            continue
        return argument
    return None


# The commands minict.cli.images runs. build_parser makes their parsers and those of _BUILT_HERE;
# the container commands come from minict.cli.containers.
_IMAGE_COMMANDS = ("pull", "list-images", "images", "rmi", "login", "logout", "info", "check")
_BUILT_HERE = _IMAGE_COMMANDS + ("runtime", "list-containers")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with `only`, just that command's subparser."""
    parser = argparse.ArgumentParser(
        prog="minict", formatter_class=HelpFormatter,
        description="A container runtime you can read: pull OCI and Docker images and run them as Linux containers.",
    )
    parser.add_argument("--version", action="version", version=f"minict {__version__}")
    parser.add_argument("--root", metavar="DIR",
                        help="state directory (default $MINICT_DIR, else /var/lib/minict)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                        help="log messages at this level and above on stderr (default warning)")
    parser.add_argument("--debug", action="store_true", help="log at debug level and show tracebacks of errors")
    commands = OnlyCommand(parser.add_subparsers(dest="command", metavar="COMMAND"), only)

    pull = commands.add_parser("pull", help="pull an image from a registry",
                               description="Pull an image and unpack its layers into the state directory.")
    pull.add_argument("reference", nargs="?", metavar="IMAGE", help="image reference, such as alpine:3.20")
    pull.add_argument("--image", dest="image", metavar="IMAGE", help="image reference (the original form of IMAGE)")
    pull.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                      help="platform to choose from a multi-platform image (default: this machine's)")
    pull.add_argument("-q", "--quiet", action="store_true", help="print only the pulled reference with its digest")
    pull.add_argument("--jobs", type=int, default=3, metavar="N", help="download at most N layers at once (default 3)")
    add_registry_options(pull)

    for name, help_text in (("list-images", "print the pulled images as a JSON array"),
                            ("images", "list pulled images in a table")):
        listing = commands.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        if name == "images":
            listing.add_argument("--format", choices=["table", "json"], default="table", help="output format")
            listing.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")

    rmi = commands.add_parser("rmi", help="remove images and the content only they used",
                              description="Remove image records, then delete blobs and snapshots that nothing uses.")
    rmi.add_argument("images", nargs="+", metavar="IMAGE", help="reference, familiar name or image ID")
    rmi.add_argument("-f", "--force", action="store_true", help="remove the record even if a container uses the image")

    login = commands.add_parser("login", help="save credentials for a registry",
                                description="Check credentials against a registry and save them (mode 0600).")
    login.add_argument("registry", metavar="REGISTRY", help="registry host[:port], such as 127.0.0.1:5443")
    login.add_argument("-u", "--username", metavar="USER", help="user name (asked for on a terminal when missing)")
    login.add_argument("-p", "--password", metavar="PASSWORD",
                       help="password; visible to other users in the process list, so prefer --password-stdin")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_registry_options(login)

    logout = commands.add_parser("logout", help="remove saved credentials for a registry",
                                 description="Remove the credentials saved for a registry.")
    logout.add_argument("registry", metavar="REGISTRY", help="registry host[:port]")
    logout.add_argument("--authfile", metavar="FILE", help="credentials file (default $REGISTRY_AUTH_FILE or $MINICT_DIR/auth.json)")

    check = commands.add_parser("check", help="verify blobs, snapshots, images and containers; --repair fixes",
                                description="Verify that blobs hash to their names, that snapshots and image records "
                                "are complete, and that container state is true. With --repair, delete what is "
                                "corrupt or half-written and settle stale states. The exit status is 1 while "
                                "problems remain.")
    check.add_argument("--repair", action="store_true", help="delete or settle what is inconsistent")
    commands.add_parser("info", help="show the state directory, snapshotter and kernel features",
                        description="Print the state directory, the snapshotter in use and kernel features as JSON.")

    commands.add_parser("runtime", help="the runc-compatible OCI runtime (the same as minict-runc)", add_help=False)
    commands.add_parser("list-containers", help="print the container names as a JSON array",
                        description="Print the names of all containers as a JSON array.")

    if only is None or only not in _BUILT_HERE:
        from minict.cli import containers

        containers.add_parsers(commands)
    if only is not None and not commands.built:
        return build_parser()  # an unknown command: the full parser's error lists the valid ones
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    from minict import log

    log.LEVEL = "debug" if args.debug else (args.log_level or "warning")


def _state_root(args: argparse.Namespace) -> str:
    return args.root or os.environ.get("MINICT_DIR") or "/var/lib/minict"


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if _command_name(arguments) == "runtime":
        # `minict runtime VERB ...` is minict-runc under another name; global options follow "runtime".
        from minict.runc.cli import main as runtime_main

        return runtime_main(arguments[arguments.index("runtime") + 1:], prog="minict runtime")
    parser = build_parser(_command_name(arguments))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args)
    args.state_root = os.path.abspath(_state_root(args))
    from minict.errors import MinictError

    try:
        if args.command in _IMAGE_COMMANDS:
            from minict.cli import images

            return images.dispatch(args)
        from minict.cli import containers

        return containers.dispatch(args)
    except MinictError as error:
        if args.debug:
            raise
        print(f"minict: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("minict: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if args.debug:
            raise
        print(f"minict: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
