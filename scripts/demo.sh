#!/usr/bin/env bash
# Set up minict on a fresh Debian 12 machine and run its main job offline:
# start a Distribution registry on 127.0.0.1, build a busybox image from
# Debian's busybox-static with umoci, push it with skopeo, then pull it with
# minict, list it, and run a container from it. Run as root. State goes to
# /var/tmp/minict-demo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
port=${MINICT_DEMO_PORT:-5000}
work=/var/tmp/minict-demo
export MINICT_DIR=${MINICT_DIR:-$work/minict}

bash "$repo/scripts/install.sh"

# 1. A registry on loopback (the CNCF Distribution registry from Debian).
mkdir -p "$work/registry"
if ! curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
    cat >"$work/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
YAML
    setsid /usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
    echo $! >"$work/registry/pid"
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
echo "registry: http://127.0.0.1:$port (pid $(cat "$work/registry/pid" 2>/dev/null || echo 'already running'))"

# 2. A real image: Debian's static busybox with its applets as symlinks.
image=$work/image
rm -rf "$image" "$work/bundle"
umoci init --layout "$image"
umoci new --image "$image:demo"
umoci unpack --image "$image:demo" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
umoci repack --image "$image:demo" "$work/bundle" >/dev/null
umoci config --image "$image:demo" --config.cmd /bin/sh --config.env PATH=/bin --os linux --architecture "$(dpkg --print-architecture)"
skopeo copy -q --dest-tls-verify=false "oci:$image:demo" "docker://127.0.0.1:$port/busybox:demo"

# 3. minict: pull it, list it, and run a container from it.
minict pull --image "127.0.0.1:$port/busybox:demo"
minict list-images
minict rm --force --name demo 2>/dev/null || true
minict run --image "127.0.0.1:$port/busybox:demo" --name demo -- \
    sh -c 'echo "hello from $(hostname), PID $$, in $(uname -s) namespaces"'
minict list-containers
