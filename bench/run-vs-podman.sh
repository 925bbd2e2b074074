#!/usr/bin/env bash
# Time `minict run --rm IMAGE true` against `podman run --rm IMAGE true` (runc) in one
# hyperfine run, with both state directories on tmpfs, and print the ratio of the medians.
#
#   sudo bench/run-vs-podman.sh [--registry 127.0.0.1:PORT] [--runs N]
#
# Without --registry it starts the testbed registry on a free loopback port
# (MINICT_TESTBED, default ../shared/testbed beside the repository), pushes busybox into
# it, and stops it at the end. Needs root, hyperfine, podman and runc.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
testbed=${MINICT_TESTBED:-$(dirname "$repo")/shared/testbed}
python=$repo/.venv/bin/python
registry=""
runs=20
while [ $# -gt 0 ]; do
    case "$1" in
        --registry) registry=${2:?}; shift 2 ;;
        --runs) runs=${2:?}; shift 2 ;;
        *) echo "unknown option $1; use --registry HOST:PORT or --runs N" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d /dev/shm/minict-bench.XXXXXX)
registry_dir=""
# podman creates these outside its --root on first use; remove the ones this script made.
podman_state=()
for path in /dev/shm/libpod_lock /run/libpod /run/containers /var/lib/containers/cache; do
    [ -e "$path" ] || podman_state+=("$path")
done
cleanup() {
    # The registry's pid file is inside $work, so stop it before deleting $work.
    if [ -n "$registry_dir" ]; then
        bash "$testbed/stop-registry.sh" -q -d "$registry_dir" --purge || true
    fi
    # podman may leave overlay mounts below its root; unmount them before deleting.
    findmnt -rn -o TARGET | grep "^$work" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
    pgrep -x podman >/dev/null || rm -rf "${podman_state[@]}"
}
trap cleanup EXIT

if [ -z "$registry" ]; then
    port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    registry_dir=$work/registry
    bash "$testbed/start-registry.sh" -q -p "$port" -d "$registry_dir"
    bash "$testbed/seed-images.sh" -q --env "$registry_dir/env" --only busybox --work "$work/seed" >/dev/null
    registry=127.0.0.1:$port
fi
image=$registry/busybox:latest

export MINICT_DIR=$work/minict
"$python" -I -m minict pull -q "$image" >/dev/null
podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --cgroup-manager cgroupfs)
"${podman[@]}" pull -q --tls-verify=false "$image" >/dev/null
# This host lacks CAP_SYS_RESOURCE and a network backend, so podman gets fixed ulimits and no network.
podman_run="${podman[*]} run --rm --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $image true"
minict_run="$python -I -m minict run --rm $image true"

hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/result.json" \
    -n minict "$minict_run" -n podman "$podman_run"
"$python" - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
minict, podman = results["minict"]["median"], results["podman"]["median"]
print(f"median: minict {minict * 1000:.1f} ms, podman {podman * 1000:.1f} ms, ratio minict/podman {minict / podman:.2f}")
PY
