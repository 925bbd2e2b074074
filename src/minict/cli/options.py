"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse


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
