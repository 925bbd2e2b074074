"""Turn the results of bench/run.sh into docs/benchmarks.md: a table per case, ratios, targets.

Usage: python bench/report.py RESULTS_DIR OUTPUT.md
"""

from __future__ import annotations

import json
import os
import sys

# (title, result file, minict's command (a prefix), the peer the target is measured against,
#  the largest allowed ratio of medians minict/peer, a note on the target)
CASES = [
    ("Start `/bin/true` on one OCI bundle", "start.json", "minict-runc run", "runc run", 0.6,
     "at most 0.6x runc's median"),
    ("Containers in a row", "loop.json", "minict-runc run", "runc run", 0.6, "at most 0.6x runc"),
    ("`run --rm` of busybox `true` from the image store", "run.json", "minict run --rm", "podman run --rm", 0.3,
     "at most 0.3x podman"),
    ("Cold pull and unpack: alpine:3.20.3", "pull-alpine.json", "minict pull", "podman pull", 0.8,
     "at most 0.8x podman pull"),
    ("Cold pull and unpack: layers", "pull-layers.json", "minict pull", "podman pull", 0.8, "at most 0.8x podman pull"),
    ("Cold pull and unpack: Debian minbase", "pull-debian.json", "minict pull", "podman pull", 0.8,
     "at most 0.8x podman pull"),
    ("Unpack of one large layer", "unpack.json", "minict pull", "tar -xzf", 1 / 0.9,
     "at least 0.9x tar's throughput (time at most 1.11x tar's)"),
]

# Text printed under a case's table, by result file.
NOTES = {
    "start.json": "The row `python -IS -c pass` starts minict's interpreter with the launchers' flags and runs "
                  "nothing: the floor under any command written in Python on this machine. See "
                  "[performance.md](performance.md) for where the rest of the time goes.",
}


def read_key_values(path: str) -> dict[str, str]:
    values = {}
    if os.path.exists(path):
        with open(path) as file:
            for line in file:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    values[key] = value
    return values


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def case_table(title: str, path: str, subject: str, peer: str, limit: float, note: str) -> tuple[list[str], str]:
    with open(path) as file:
        results = json.load(file)["results"]
    mine = next(r for r in results if r["command"].startswith(subject))
    lines = [f"### {title}", "", "| command | min (ms) | median (ms) | max (ms) | runs | minict / this |",
             "|---|---|---|---|---|---|"]
    for result in results:
        ratio = "" if result is mine else f"{mine['median'] / result['median']:.2f}"
        lines.append(f"| {result['command']} | {milliseconds(result['min'])} | {milliseconds(result['median'])} | "
                     f"{milliseconds(result['max'])} | {len(result['times'])} | {ratio} |")
    target = next((r for r in results if r["command"].startswith(peer)), None)
    ratio = mine["median"] / target["median"]
    verdict = "met" if ratio <= limit else "not met"
    lines += ["", f"Target: {note}. Ratio of medians {ratio:.2f}: **{verdict}**.", ""]
    if os.path.basename(path) in NOTES:
        lines += [NOTES[os.path.basename(path)], ""]
    return lines, f"| {title} | {note} | {ratio:.2f} | {verdict} |"


def main(results_dir: str, output: str) -> None:
    machine = read_key_values(os.path.join(results_dir, "machine.txt"))
    extra = read_key_values(os.path.join(results_dir, "extra.txt"))
    body: list[str] = []
    summary = ["| case | target | measured | verdict |", "|---|---|---|---|"]
    for title, name, subject, peer, limit, note in CASES:
        path = os.path.join(results_dir, name)
        if not os.path.exists(path):
            continue
        lines, row = case_table(title, path, subject, peer, limit, note)
        body += lines
        summary.append(row)
    listing = os.path.join(results_dir, "listing.json")
    if os.path.exists(listing):
        with open(listing) as file:
            results = json.load(file)["results"]
        body += ["### Listing many containers", "", "| command | min (ms) | median (ms) | max (ms) | runs |",
                 "|---|---|---|---|---|"]
        for result in results:
            body.append(f"| {result['command']} | {milliseconds(result['min'])} | {milliseconds(result['median'])} | "
                        f"{milliseconds(result['max'])} | {len(result['times'])} |")
            verdict = "met" if result["median"] < 0.2 else "not met"
            summary.append(f"| {result['command']} | under 200 ms | {milliseconds(result['median'])} ms | {verdict} |")
        body.append("")
    if "disk_per_container_kb" in extra:
        size = int(extra["disk_per_container_kb"])
        verdict = "met" if size <= 64 else "not met"
        summary.append(f"| disk per created container ({extra.get('disk_containers')} created) | at most 64 KB | "
                       f"{size} KB | {verdict} |")
    if "monitor_rss_kb" in extra:
        summary.append(f"| memory of a detached container's monitor | reported beside conmon | "
                       f"minict {int(extra['monitor_rss_kb']) // 1024} MB, conmon "
                       f"{int(extra['conmon_rss_kb']) / 1024:.1f} MB (RSS) | reported |")
    header = [
        "# Benchmarks",
        "",
        "minict against the tools people would pick instead, measured in one run of",
        "`bench/run.sh` on one machine, with every work directory on tmpfs. hyperfine times",
        "each command once per round, and the rounds alternate between the commands of a",
        "case. Each table gives the min, median and max and the ratio of minict's median to",
        "each peer's (below 1 means minict is faster).",
        "",
        "Rerun it as root with `sudo bench/run.sh` (about 5 minutes on 2 vCPUs), or",
        "`sudo bench/run.sh --quick` for one run of each case on small inputs, as CI does.",
        "",
        "## Machine",
        "",
    ]
    header += [f"- {key}: {value}" for key, value in machine.items()]
    if "large_layer" in extra:
        header.append(f"- large layer: {extra['large_layer']}")
    header += ["", "## Summary", ""] + summary + ["", "## Cases", ""]
    with open(output, "w") as file:
        file.write("\n".join(header + body).rstrip() + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
