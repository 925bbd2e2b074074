"""Time several commands in alternating rounds with hyperfine, and write hyperfine's JSON.

hyperfine times all runs of one command before it starts the next, so a change
in the machine's load during a case (another process, the page cache, CPU
frequency) falls on one command only. This script runs round after round, and
each round times every command once with `hyperfine --runs 1`, so such a change
is shared. The options are hyperfine's:

    alternate.py --runs N [--warmup W] --export-json FILE ([--prepare CMD] -n NAME COMMAND)...

A --prepare applies to the commands after it, up to the next --prepare.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile


def parse(argv: list[str]) -> tuple[int, int, str, list[dict]]:
    runs, warmup, output, prepare, name = 10, 0, "", None, None
    commands: list[dict] = []
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument in ("--runs", "--warmup", "--export-json", "--prepare", "-n", "--command-name"):
            if index + 1 >= len(argv):
                sys.exit(f"alternate.py: {argument} needs a value")
            value = argv[index + 1]
            index += 2
            if argument == "--runs":
                runs = int(value)
            elif argument == "--warmup":
                warmup = int(value)
            elif argument == "--export-json":
                output = value
            elif argument == "--prepare":
                prepare = value
            else:
                name = value
        elif argument.startswith("-"):
            sys.exit(f"alternate.py: unknown option {argument}; see the module docstring")
        else:
            commands.append({"name": name or argument, "command": argument, "prepare": prepare})
            name = None
            index += 1
    if not output or not commands or runs < 1:
        sys.exit("alternate.py: give --export-json FILE, --runs N (at least 1) and at least one command")
    return runs, warmup, output, commands


def time_once(command: dict) -> float:
    """Run the command once under hyperfine, after its --prepare, and return the seconds it took."""
    with tempfile.TemporaryDirectory() as directory:
        result = os.path.join(directory, "result.json")
        args = ["hyperfine", "-N", "--style", "none", "--runs", "1", "--export-json", result]
        if command["prepare"]:
            args += ["--prepare", command["prepare"]]
        subprocess.run(args + ["-n", command["name"], command["command"]], check=True, stdout=subprocess.DEVNULL)
        with open(result) as file:
            return json.load(file)["results"][0]["times"][0]


def main(argv: list[str]) -> None:
    runs, warmup, output, commands = parse(argv)
    for _ in range(warmup):
        for command in commands:
            time_once(command)
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for position, command in enumerate(commands):
            times[position].append(time_once(command))
    results = []
    for command, measured in zip(commands, times):
        results.append({
            "command": command["name"], "mean": statistics.mean(measured),
            "stddev": statistics.stdev(measured) if len(measured) > 1 else 0.0,
            "median": statistics.median(measured), "min": min(measured), "max": max(measured), "times": measured,
        })
        print(f"{command['name']}: median {statistics.median(measured) * 1000:.1f} ms "
              f"(min {min(measured) * 1000:.1f}, max {max(measured) * 1000:.1f}, {len(measured)} alternating runs)",
              file=sys.stderr)
    with open(output, "w") as file:
        json.dump({"results": results}, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
