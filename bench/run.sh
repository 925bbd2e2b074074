#!/usr/bin/env bash
# Benchmark minict against runc, crun, podman, skopeo + umoci and GNU tar, in one run on
# one machine, and write the results with their ratios to docs/benchmarks.md.
#
#   sudo bench/run.sh            # the full run (about 5 minutes on 2 vCPUs)
#   sudo bench/run.sh --quick    # one run of each case on small inputs, as CI does
#
# Options: --quick, --runs N (hyperfine runs per command), --out FILE (default
# docs/benchmarks.md; --quick writes to the work directory unless --out is given),
# --keep (keep the work directory). Everything runs on tmpfs (/dev/shm), because disk
# timings here swing 2-5x. A registry on a free loopback port serves the testbed images.
# crun 1.8 refuses hybrid cgroup hosts. On such a host the script re-runs itself in a
# private mount namespace without the cgroup2 mount, so nothing outside it changes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
testbed=${MINICT_TESTBED:-$repo/../shared/testbed}
python=$repo/.venv/bin/python
runs=10
quick=0
keep=0
out=""
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --runs) runs=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "bench: unknown option $1; see --help" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
for tool in hyperfine skopeo umoci runc crun podman conmon jq tar unshare; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/install.sh" >&2; exit 1; }
done
[ -x "$python" ] || { echo "bench: $python is missing; run scripts/install.sh" >&2; exit 1; }

unified=/sys/fs/cgroup/unified
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] && [ "$(stat -f -c %T $unified 2>/dev/null)" = cgroup2fs ]; then
    if [ "${MINICT_BENCH_NS:-}" != 1 ]; then
        MINICT_BENCH_NS=1 exec unshare --mount --propagation private -- "$0" "${args[@]}"
    fi
    umount "$unified"
fi

if [ "$quick" = 1 ]; then
    runs=1; loop=5; disk_n=10; many=50; pull_sets="alpine"
else
    loop=50; disk_n=100; many=1000; pull_sets="alpine layers debian"
fi
work=$(mktemp -d /dev/shm/minict-bench.XXXXXX)
results=$work/results
mkdir -p "$results"
out=${out:-$([ "$quick" = 1 ] && echo "$work/benchmarks.md" || echo "$repo/docs/benchmarks.md")}
registry_dir=$work/registry
# podman and crun make these outside the folders they are given; remove the ones this run made.
made_outside=()
for path in /dev/shm/libpod_lock /run/libpod /run/containers /run/crun; do
    [ -e "$path" ] || made_outside+=("$path")
done
id=bench-$$

cleanup() {
    set +e
    runc --root "$work/runc" delete -f "$id-runc" >/dev/null 2>&1
    crun --root "$work/crun" --cgroup-manager=disabled delete -f "$id-crun" >/dev/null 2>&1
    "$python" -I -m minict.runc.cli --root "$work/mrunc" delete -f "$id-minict" >/dev/null 2>&1
    MINICT_DIR=$work/minict "$python" -I -m minict rm -f rss >/dev/null 2>&1
    [ -d "$work/podman" ] && "${podman[@]}" rm -af -t 0 >/dev/null 2>&1
    [ -f "$registry_dir/registry.pid" ] && bash "$testbed/stop-registry.sh" -q -d "$registry_dir" --purge
    findmnt -rn -o TARGET | grep "^$work" | sort -r | xargs -r -n1 umount -l 2>/dev/null
    if [ "$keep" = 1 ]; then echo "bench: work directory kept: $work" >&2; else rm -rf "$work"; fi
    pgrep -x podman >/dev/null || rm -rf "${made_outside[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "bench: $*" >&2; }

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bash "$testbed/start-registry.sh" -q -p "$port" -d "$registry_dir"
registry=127.0.0.1:$port
seed=(--only busybox,alpine,layers)
[ "$quick" = 0 ] && seed+=(--with-debian)
log "seeding the registry (${seed[*]})"
bash "$testbed/seed-images.sh" -q --env "$registry_dir/env" "${seed[@]}" --work "$work/seed" \
    --summary-json "$work/summary.json" >/dev/null
busybox=$registry/busybox:latest

{
    echo "date=$(date -u +%FT%TZ)"
    echo "commit=$(git -C "$repo" rev-parse --short HEAD)"
    echo "cpus=$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    echo "memory=$(free -g | awk '/Mem:/{print $2}') GiB"
    echo "kernel=$(uname -r)"
    echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "python=$("$python" --version 2>&1 | cut -d' ' -f2)"
    echo "tools=minict $("$python" -I -m minict --version | cut -d' ' -f2), runc $(runc --version | head -1 | cut -d' ' -f3), crun $(crun --version | head -1 | cut -d' ' -f3), podman $(podman --version | cut -d' ' -f3), conmon $(conmon --version | head -1 | cut -d' ' -f3), skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | cut -d' ' -f3), tar $(tar --version | head -1 | awk '{print $NF}'), hyperfine $(hyperfine --version | cut -d' ' -f2)"
    echo "mode=$([ "$quick" = 1 ] && echo quick || echo full), runs=$runs"
} > "$results/machine.txt"

# hyperfine in alternating rounds: every command of a case once per round (see bench/alternate.py).
hf=("$python" -I "$repo/bench/alternate.py" --warmup "$([ "$quick" = 1 ] && echo 0 || echo 2)")
minict="$repo/.venv/bin/minict"  # the launchers scripts/install.sh writes, as users and podman run them
mrunc="$repo/.venv/bin/minict-runc --root $work/mrunc"

# --- one OCI bundle of busybox running /bin/true, for the three runtimes
log "start: /bin/true on one bundle"
bundle=$work/bundle
skopeo copy -q --src-tls-verify=false "docker://$busybox" "oci:$work/layout:busybox"
umoci unpack --image "$work/layout:busybox" "$work/unpacked" >/dev/null
mkdir -p "$bundle" && mv "$work/unpacked/rootfs" "$bundle/rootfs"
(cd "$bundle" && runc spec)
jq '.process.args = ["/bin/true"] | .process.terminal = false' "$bundle/config.json" > "$bundle/config.new"
mv "$bundle/config.new" "$bundle/config.json"
runc_run="runc --root $work/runc run -b $bundle $id-runc"
crun_run="crun --root $work/crun --cgroup-manager=disabled run -b $bundle $id-crun"
minict_run="$mrunc run -b $bundle $id-minict"
for command in "$runc_run" "$crun_run" "$minict_run"; do $command </dev/null; done
"${hf[@]}" --runs "$runs" --export-json "$results/start.json" \
    -n "minict-runc run" "$minict_run" -n "runc run" "$runc_run" -n "crun run" "$crun_run" \
    -n "python -IS -c pass" "$python -IS -c pass"

log "loop: $loop containers in a row"
repeat() { echo "bash -c 'for i in \$(seq $loop); do $1 </dev/null || exit 1; done'"; }
"${hf[@]}" --runs "$([ "$quick" = 1 ] && echo 1 || echo 5)" --export-json "$results/loop.json" \
    -n "minict-runc run x$loop" "$(repeat "$minict_run")" -n "runc run x$loop" "$(repeat "$runc_run")" \
    -n "crun run x$loop" "$(repeat "$crun_run")"

log "run --rm: minict against podman"
export MINICT_DIR=$work/minict
$minict pull -q "$busybox" >/dev/null
podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --cgroup-manager cgroupfs)
"${podman[@]}" pull -q --tls-verify=false "$busybox" >/dev/null
podman_flags="--runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
"${hf[@]}" --runs "$runs" --export-json "$results/run.json" \
    -n "minict run --rm" "$minict run --rm $busybox true" \
    -n "podman run --rm" "${podman[*]} run --rm $podman_flags $busybox true"

log "monitor memory: minict's monitor against conmon"
$minict run -d --name rss $busybox sleep 600 >/dev/null
"${podman[@]}" run -d --name rss $podman_flags "$busybox" sleep 600 >/dev/null
sleep 1
monitor=$(jq .monitor_pid "$MINICT_DIR/containers/rss/state.json")
conmon_pid=$(pgrep -f "conmon.*$work/podman" | head -1)
echo "monitor_rss_kb=$(ps -o rss= -p "$monitor" | tr -d ' ')" >> "$results/extra.txt"
echo "conmon_rss_kb=$(ps -o rss= -p "$conmon_pid" | tr -d ' ')" >> "$results/extra.txt"
$minict rm -f rss >/dev/null
"${podman[@]}" rm -f -t 0 rss >/dev/null

log "pull: cold pull and unpack ($pull_sets)"
for name in $pull_sets; do
    case $name in
        alpine) ref=alpine:3.20.3 ;;
        layers) ref=layers:latest ;;
        debian) ref=debian:$(jq -r 'first(.[] | select(.repo == "debian") | .ref)' "$work/summary.json") ;;
    esac
    p=$work/pull-$name
    "${hf[@]}" --runs "$runs" --export-json "$results/pull-$name.json" \
        --prepare "bash -c 'rm -rf $p && mkdir -p $p'" \
        -n "minict pull $ref" "env MINICT_DIR=$p/minict $minict pull -q $registry/$ref" \
        --prepare "bash -c 'rm -rf $p && mkdir -p $p'" \
        -n "skopeo copy + umoci unpack" "bash -c 'skopeo copy -q --src-tls-verify=false docker://$registry/$ref oci:$p/img:x && umoci unpack --image $p/img:x $p/bundle >/dev/null'" \
        --prepare "bash -c 'rm -rf $p && mkdir -p $p'" \
        -n "podman pull" "podman --root $p/root --runroot $p/run --storage-driver overlay pull -q --tls-verify=false $registry/$ref"
    findmnt -rn -o TARGET | grep "^$p" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$p"
done

log "unpack: one large layer against tar -xzf"
big=alpine:3.20.3
[ "$quick" = 1 ] || big=debian:$(jq -r 'first(.[] | select(.repo == "debian") | .ref)' "$work/summary.json")
skopeo copy -q --src-tls-verify=false "docker://$registry/$big" "oci:$work/big:x"
blob=$(jq -r '.layers[0].digest' "$work/big/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/big/index.json" | cut -d: -f2)" | cut -d: -f2)
echo "large_layer=$big ($(du -m "$work/big/blobs/sha256/$blob" | cut -f1) MB compressed)" >> "$results/extra.txt"
u=$work/unpack
"${hf[@]}" --runs "$runs" --export-json "$results/unpack.json" \
    --prepare "bash -c 'rm -rf $u && mkdir -p $u/tar'" \
    -n "minict pull (one layer)" "env MINICT_DIR=$u/minict $minict pull -q $registry/$big" \
    --prepare "bash -c 'rm -rf $u && mkdir -p $u/tar'" \
    -n "tar -xzf" "tar -xzf $work/big/blobs/sha256/$blob -C $u/tar"
rm -rf "$u"

log "many containers: disk per container and listing times"
export MINICT_DIR=$work/minict-many
$minict pull -q "$busybox" >/dev/null
for i in $(seq "$disk_n"); do $minict create --name "c$i" "$busybox" true >/dev/null; done
disk_kb=$(du -sk "$MINICT_DIR/containers" | cut -f1)
echo "disk_per_container_kb=$(( disk_kb / disk_n ))" >> "$results/extra.txt"
echo "disk_containers=$disk_n" >> "$results/extra.txt"
for i in $(seq $((disk_n + 1)) "$many"); do $minict create --name "c$i" "$busybox" true >/dev/null; done
"${hf[@]}" --runs "$runs" --export-json "$results/listing.json" \
    -n "minict list-containers ($many)" "$minict list-containers" -n "minict ps -a ($many)" "$minict ps -a"
echo "listed_containers=$many" >> "$results/extra.txt"

"$python" "$repo/bench/report.py" "$results" "$out"
log "wrote $out"
