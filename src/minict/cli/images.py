"""Image commands: pull, list-images, images, rmi, login, logout, info."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from minict.errors import InvalidArgument
from minict.store import open_store


def _client_options(args: argparse.Namespace):
    from minict.registry.client import ClientOptions, load_insecure_registries

    tls_verify = None if args.tls_verify is None else args.tls_verify == "true"
    if args.cert_dir and not os.path.isdir(args.cert_dir):
        raise InvalidArgument(f"--cert-dir {args.cert_dir}: not a directory")
    options = ClientOptions(
        state_root=args.state_root,
        tls_verify=tls_verify,
        cert_dir=args.cert_dir,
        authfile=args.authfile,
        insecure_registries=load_insecure_registries(),
    )
    # $MINICT_REGISTRY_TIMEOUT: seconds to wait for a registry's next bytes before retrying.
    text = os.environ.get("MINICT_REGISTRY_TIMEOUT")
    if text:
        try:
            options.read_timeout = float(text)
        except ValueError:
            options.read_timeout = -1
        if not 0 < options.read_timeout <= 3600:
            raise InvalidArgument(f"invalid MINICT_REGISTRY_TIMEOUT {text!r}: give seconds from 0.1 to 3600")
        options.connect_timeout = min(options.connect_timeout, options.read_timeout)
    return options


def pull(args: argparse.Namespace) -> int:
    from minict.platform import parse_platform
    from minict.progress import make_progress
    from minict.pull import PullOptions, Puller

    if args.reference and args.image and args.reference != args.image:
        raise InvalidArgument(f"two images given ({args.reference!r} and --image {args.image!r}); give one")
    text = args.image or args.reference
    if not text:
        raise InvalidArgument("no image given; use: minict pull --image REF (or minict pull REF)")
    if args.jobs < 1:
        raise InvalidArgument(f"--jobs {args.jobs}: must be at least 1")
    options = PullOptions(platform=parse_platform(args.platform) if args.platform else None, jobs=args.jobs)
    store = open_store(args.state_root)
    progress = make_progress(args.quiet)
    with progress:
        record = Puller(store, _client_options(args), options, progress).pull(text)
        progress.message(f"Digest: {record['digest']}")
    from minict.reference import parse_reference

    reference = parse_reference(record["name"])
    if args.quiet:
        print(f"{reference.repository}{':' + reference.tag if reference.tag else ''}@{record['digest']}")
    else:
        print(str(reference))
    return 0


def list_images(args: argparse.Namespace) -> int:
    from minict.images import familiar_name, list_records

    store = open_store(args.state_root)
    names = sorted(familiar_name(record) for record in list_records(store))
    print(json.dumps(names, indent="\t"))
    return 0


def images_table(args: argparse.Namespace) -> int:
    from minict.images import list_records
    from minict.progress import human_size
    from minict.reference import parse_reference

    store = open_store(args.state_root)
    rows = []
    for record in sorted(list_records(store), key=lambda r: r["name"]):
        reference = parse_reference(record["name"])
        familiar = reference.familiar()
        repository = familiar.split("@")[0]
        if reference.tag:
            repository = repository[: -(len(reference.tag) + 1)]
        rows.append({
            "repository": repository,
            "tag": reference.tag or "<none>",
            "id": record["config"]["digest"].split(":")[1][:12],
            "digest": record["digest"],
            "platform": record.get("platform", ""),
            "pulled": record.get("pulled", ""),
            "size": record.get("size", 0),
            "name": record["name"],
        })
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if args.quiet:
        for row in rows:
            print(row["id"])
        return 0
    header = ("REPOSITORY", "TAG", "IMAGE ID", "PLATFORM", "PULLED", "SIZE")
    table = [header] + [(r["repository"], r["tag"], r["id"], r["platform"], r["pulled"], human_size(r["size"])) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("   ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def rmi(args: argparse.Namespace) -> int:
    from minict.images import remove_image

    store = open_store(args.state_root)
    status = 0
    from minict.errors import MinictError

    for text in args.images:
        try:
            result = remove_image(store, text, force=args.force)
        except MinictError as error:
            print(f"minict: error: {error}", file=sys.stderr)
            status = 1
            continue
        print(f"Untagged: {result['name']}")
        if result["blobs"] or result["snapshots"]:
            print(f"Deleted: {result['blobs']} blobs, {result['snapshots']} snapshots")
    return status


def login(args: argparse.Namespace) -> int:
    from minict.reference import parse_reference
    from minict.registry import credentials
    from minict.registry.client import RegistryClient

    registry = args.registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not registry or "/" in registry:
        raise InvalidArgument(f"invalid registry {args.registry!r}: give a host[:port], such as 127.0.0.1:5443")
    parse_reference(f"{registry}/probe")  # validates host[:port]
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
    user = args.username
    if not user:
        if not sys.stdin.isatty() or args.password_stdin:
            raise InvalidArgument("no user name given; use --username USER")
        user = input("Username: ").strip()
    if args.password_stdin:
        if args.password:
            raise InvalidArgument("give either --password or --password-stdin, not both")
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise InvalidArgument("no password given; pipe it to --password-stdin")
    if not user or not password:
        raise InvalidArgument("the user name and password must not be empty")
    store = open_store(args.state_root)
    client = RegistryClient(registry, _client_options(args))
    client.check_login(user, password)
    path = credentials.login_file(store.root, args.authfile)
    credentials.store(registry, user, password, path)
    print("Login Succeeded")
    return 0


def logout(args: argparse.Namespace) -> int:
    from minict.registry import credentials

    registry = args.registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    path = credentials.login_file(args.state_root, args.authfile)
    if not credentials.remove(registry, path):
        raise InvalidArgument(f"not logged in to {registry} (no entry in {path})")
    print(f"Removed login credentials for {registry}")
    return 0


def info(args: argparse.Namespace) -> int:
    from minict import __version__
    from minict.snapshots import choose_snapshotter

    store = open_store(args.state_root)
    with open("/proc/filesystems") as file:
        filesystems = file.read()
    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    data = {
        "version": __version__,
        "root": store.root,
        "snapshotter": choose_snapshotter(store),
        "kernel": os.uname().release,
        "overlayfs": "\toverlay\n" in filesystems,
        "cgroup": "v2" if cgroup2 else "v1",
        "images": len(os.listdir(store.images)),
        "containers": len(os.listdir(store.containers)),
    }
    print(json.dumps(data, indent=2))
    return 0


def check(args: argparse.Namespace) -> int:
    from minict.check import check as check_store

    report = check_store(open_store(args.state_root), repair=args.repair)
    for message in report.repaired:
        print(f"repaired: {message}")
    for message in report.problems:
        print(f"problem: {message}")
    for message in report.notes:
        print(f"note: {message}")
    if report.problems:
        print(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''} left"
              + ("" if args.repair else "; minict check --repair fixes what can be fixed"))
        return 1
    print("the state directory is consistent")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    handlers = {
        "check": check,
        "pull": pull,
        "list-images": list_images,
        "images": images_table,
        "rmi": rmi,
        "login": login,
        "logout": logout,
        "info": info,
    }
    return handlers[args.command](args)
