"""OCI hooks: programs the runtime runs at fixed points of a container's life.

    prestart, createRuntime   in the runtime's namespaces, after the container's
                              namespaces and mounts exist, before pivot_root
    createContainer           in the container's namespaces, before pivot_root
    startContainer            in the container, after `start`, before execve
    poststart                 in the runtime's namespaces, after the command started
    poststop                  in the runtime's namespaces, when the container is deleted

Each hook gets the container's state JSON on stdin. A hook that fails or
outlives its `timeout` stops create and start; failed poststart and poststop
hooks are only reported, as the runtime spec says.
"""

from __future__ import annotations

import json
import os

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookError(Exception):
    pass


def check(hooks: object) -> None:
    """Reject a malformed `hooks` object of config.json before anything runs."""
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise HookError("invalid hooks in config.json: it must be an object")
    for name, entries in hooks.items():
        if name not in HOOK_NAMES:
            raise HookError(f"invalid hooks in config.json: unknown hook {name!r}; use one of {', '.join(HOOK_NAMES)}")
        if not isinstance(entries, list):
            raise HookError(f"invalid hooks.{name} in config.json: it must be an array")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"].startswith("/"):
                raise HookError(f"invalid hook in hooks.{name}: each needs an absolute path")
            timeout = entry.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
                raise HookError(f"invalid hook timeout {timeout!r} in hooks.{name}: it must be a positive number of seconds")


def run(hooks: dict | None, name: str, state: dict) -> None:
    """Run every hook of kind `name` in order with `state` on stdin; raise HookError when one fails."""
    entries = (hooks or {}).get(name) or []
    if not entries:
        return
    import subprocess  # only here: a container start without hooks does not pay for it

    for entry in entries:
        args = entry.get("args") or [entry["path"]]
        env = dict(item.split("=", 1) for item in entry.get("env") or [] if "=" in item)
        try:
            result = subprocess.run(args, executable=entry["path"], input=json.dumps(state).encode(), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=entry.get("timeout"),
                                    close_fds=True, cwd="/")
        except subprocess.TimeoutExpired:
            raise HookError(f"{name} hook {entry['path']} timed out after {entry['timeout']} seconds") from None
        except OSError as error:
            raise HookError(f"{name} hook {entry['path']} failed to start: {error.strerror}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).decode(errors="replace").strip()[:400]
            raise HookError(f"{name} hook {entry['path']} failed with status {result.returncode}"
                            + (f": {detail}" if detail else ""))


def run_reporting(hooks: dict | None, name: str, state: dict) -> str | None:
    """Run the hooks of kind `name`; return the error text of a failure instead of raising."""
    try:
        run(hooks, name, state)
    except HookError as error:
        return str(error)
    return None


def state_document(container_id: str, status: str, pid: int, bundle: str, annotations: dict | None) -> dict:
    """Build the runtime-spec state JSON that hooks read on stdin and `state` prints."""
    from minict.oci import OCI_VERSION

    return {"ociVersion": OCI_VERSION, "id": container_id, "status": status, "pid": pid,
            "bundle": os.path.abspath(bundle), "annotations": annotations or {}}
