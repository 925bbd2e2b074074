"""Pull progress: bars on a terminal, log lines otherwise, or nothing with --quiet."""

from __future__ import annotations

import sys
import threading
import time

from minict.log import get_logger

log = get_logger("minict.pull")


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} GB"


class Progress:
    """Reports nothing; the base for the other reporters and the --quiet mode."""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def layer_added(self, digest: str, size: int | None, status: str) -> None:
        pass

    def layer_advance(self, digest: str, count: int) -> None:
        pass

    def layer_status(self, digest: str, status: str) -> None:
        pass


class LogProgress(Progress):
    """One line per layer event on stderr, for logs and pipes."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._sizes: dict[str, int | None] = {}

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        self._write(text)

    def layer_added(self, digest: str, size: int | None, status: str) -> None:
        self._started[digest] = time.monotonic()
        self._sizes[digest] = size
        self._write(f"{short(digest)}: {status}")

    def layer_status(self, digest: str, status: str) -> None:
        elapsed = time.monotonic() - self._started.get(digest, time.monotonic())
        size = self._sizes.get(digest)
        detail = f" ({human_size(size)}, {elapsed:.1f} s)" if size and status.startswith("Pull complete") else ""
        self._write(f"{short(digest)}: {status}{detail}")


class BarProgress(Progress):
    """A rich progress bar per layer with bytes and speed, like docker pull."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as RichProgress, TextColumn,
                                   TransferSpeedColumn)

        self._progress = RichProgress(
            TextColumn("{task.fields[short]}:"),
            TextColumn("{task.fields[status]:<16}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "BarProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def message(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)

    def layer_added(self, digest: str, size: int | None, status: str) -> None:
        self._tasks[digest] = self._progress.add_task("", total=size, short=short(digest), status=status)
        if status != "Waiting":
            # The blob is in the content store already, so its bar starts full.
            self._progress.update(self._tasks[digest], completed=size or 0)

    def layer_advance(self, digest: str, count: int) -> None:
        self._progress.advance(self._tasks[digest], count)

    def layer_status(self, digest: str, status: str) -> None:
        self._progress.update(self._tasks[digest], status=status)


def make_progress(quiet: bool) -> Progress:
    if quiet:
        return Progress()
    if sys.stderr.isatty():
        return BarProgress()
    return LogProgress()
