"""The log file of a detached container, in the CRI format, with rotation.

Each record is one line:

    2026-12-04T16:00:00.123456789Z stdout F hello world

The tag is F for a full line and P for a part of one: a line longer than
MAX_RECORD, or output that ended without a newline. When the file would
grow past max_size it is renamed to container.log.1 (older ones shift to
.2, ...) and a new one starts, so the log never takes more than
max_size * max_files bytes.

The monitor writes with LogWriter; `minict logs` reads with read_records.
Only os and time are imported, so the monitor stays small.
"""

from __future__ import annotations

import os
import time

MAX_RECORD = 16 * 1024
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 2


def timestamp(nanoseconds: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, the form docker and the CRI use."""
    value = time.time_ns() if nanoseconds is None else nanoseconds
    seconds, fraction = divmod(value, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class LogWriter:
    def __init__(self, path: str, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES):
        self.path = path
        self.max_size = max_size
        self.max_files = max(max_files, 1)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        """Add output of `stream` (stdout or stderr); whole lines become F records at once."""
        buffer = self.pending.get(stream, b"") + data
        lines = buffer.split(b"\n")
        for line in lines[:-1]:
            while len(line) > MAX_RECORD:
                self._record(stream, b"P", line[:MAX_RECORD])
                line = line[MAX_RECORD:]
            self._record(stream, b"F", line)
        rest = lines[-1]
        while len(rest) >= MAX_RECORD:
            self._record(stream, b"P", rest[:MAX_RECORD])
            rest = rest[MAX_RECORD:]
        self.pending[stream] = rest

    def close(self) -> None:
        """Write what is left of unfinished lines as P records (no newline follows them) and close."""
        for stream, rest in self.pending.items():
            if rest:
                self._record(stream, b"P", rest)
        self.pending.clear()
        os.close(self.fd)

    def _record(self, stream: str, tag: bytes, content: bytes) -> None:
        record = b"%s %s %s %s\n" % (timestamp().encode(), stream.encode(), tag, content)
        if self.size and self.size + len(record) > self.max_size:
            self._rotate()
        os.write(self.fd, record)
        self.size += len(record)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files == 1:
            os.unlink(self.path)
        else:
            # container.log.1 becomes .2 and so on, and the oldest is overwritten.
            for number in range(self.max_files - 1, 0, -1):
                source = self.path if number == 1 else f"{self.path}.{number - 1}"
                if os.path.exists(source):
                    os.rename(source, f"{self.path}.{number}")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0


def log_files(path: str) -> list[str]:
    """Return the rotated files, oldest first, then the current one."""
    rotated = []
    number = 1
    while os.path.exists(f"{path}.{number}"):
        rotated.append(f"{path}.{number}")
        number += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def parse_record(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """Split a record into (timestamp, stream, full, content); None for a malformed line."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", parts[3] if len(parts) == 4 else b""
