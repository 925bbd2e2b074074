#!/usr/bin/env bash
# Install what minict and its tests need on Debian 12, as root: Debian packages,
# then minict itself (editable, with the test extras) in .venv beside this folder.
# /usr/local/bin/minict and minict-runc point into that venv. Safe to run again.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

packages=(
    python3 python3-venv python3-pip   # the interpreter minict runs on
    libarchive13 libseccomp2 iproute2  # layer extraction, seccomp filters, network namespaces
    docker-registry skopeo umoci buildah busybox-static  # the local registry and the image tools
    apache2-utils openssl curl jq attr   # the testbed's TLS and basic-auth registry
    runc crun podman conmon containerd hyperfine  # runtimes compared with, engines that drive minict-runc
    debootstrap                          # the benchmark's Debian minbase image
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian interpreter, not a pyenv shim that may be first on PATH.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
if [ ! -x "$repo/.venv/bin/python" ]; then
    "$python" -m venv "$repo/.venv"
fi
"$repo/.venv/bin/pip" install -q --disable-pip-version-check -e "$repo[test]"
# Replace pip's two launchers with lean ones. pip's import re and go through site and
# its .pth files. These run the interpreter with -IS (isolated, no site), put the source
# and the venv's packages on sys.path themselves, and end with os._exit once the output is
# flushed, which skips the interpreter's teardown. Together that saves about 10 ms of
# each container start.
site=$("$repo/.venv/bin/python" -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pair in "minict minict.cli.main" "minict-runc minict.runc.cli"; do
    set -- $pair
    cat > "$repo/.venv/bin/$1.new" <<LAUNCHER
#!$repo/.venv/bin/python -IS
# Written by scripts/install.sh in place of pip's launcher (see there).
import os
import sys
sys.path[:0] = ["$repo/src", "$site"]
from $2 import main
status = main()  # SystemExit and errors leave the usual way
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except OSError:
        pass  # a closed pipe, as in minict ps | head
os._exit(status or 0)
LAUNCHER
    chmod 755 "$repo/.venv/bin/$1.new"
    mv "$repo/.venv/bin/$1.new" "$repo/.venv/bin/$1"
done
ln -sf "$repo/.venv/bin/minict" /usr/local/bin/minict
ln -sf "$repo/.venv/bin/minict-runc" /usr/local/bin/minict-runc
echo "minict installed: $(/usr/local/bin/minict --version)"
