#!/usr/bin/env bash
# Install what the tests need, then run the whole suite as root. The tests start
# their own Distribution registries on free loopback ports, with state in a
# temporary folder, and remove them when they end.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/install.sh"
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest "$@"
