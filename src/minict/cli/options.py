"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse
import os
import sys


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, finding the terminal width without importing shutil.

    argparse imports shutil (with bz2, lzma and fnmatch) for the width each
    time it builds a parser, about 2 ms of a container start. This follows
    shutil.get_terminal_size: $COLUMNS, then the terminal of stdout, then 80.
    """

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "0"))
            except ValueError:
                width = 0
            if width <= 0:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    width = 0
            width = (width if width > 0 else 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class SkippedParser:
    """A placeholder for the parser of a command that is not being run. Every call on it is ignored."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


class OnlyCommand:
    """A wrapper of the subparsers action that builds only the named command's parser.

    Building the parsers of all commands costs about 20 ms, a large part of a
    container start, and only the one being run is needed. With `only` None,
    all are built (for --help and for the error that lists valid commands).
    """

    def __init__(self, commands, only: str | None):
        self.commands = commands
        self.only = only
        self.built = False

    def add_parser(self, name: str, **kwargs):
        if self.only is not None and name != self.only:
            return SkippedParser()
        self.built = True
        kwargs.setdefault("formatter_class", HelpFormatter)
        return self.commands.add_parser(name, **kwargs)


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-verify", choices=["true", "false"], default=None,
        help="verify the registry's TLS certificate (default true). With false, minict also "
        "accepts plain HTTP from that registry; loopback registries may always use plain HTTP",
    )
    parser.add_argument("--cert-dir", metavar="DIR",
                        help="use the CA certificates (*.crt) and client certificate and key (*.cert, *.key) in DIR")
    parser.add_argument("--authfile", metavar="FILE",
                        help="read and write credentials in FILE (containers auth.json format); default $REGISTRY_AUTH_FILE "
                        "or $MINICT_DIR/auth.json")
