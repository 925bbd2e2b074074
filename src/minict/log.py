"""Loggers that configure logging on first use.

Importing the logging package costs about 6 ms, a tenth of a container
start, and only pull, login and garbage collection log anything. So the
command line stores the requested level here, and logging is imported and
set up when a logger first gets a message at that level or above.
"""

from __future__ import annotations

LEVEL = "warning"
_configured = False


_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def get_logger(name: str) -> "_Logger":
    """Return a logger for `name`; logging itself is imported when it first has something to show."""
    return _Logger(name)


class _Logger:
    """A lazy logging.getLogger(name). Messages below LEVEL are dropped without importing logging."""

    def __init__(self, name: str):
        self._name = name
        self._logger = None

    def _real(self):
        if self._logger is None:
            self._logger = _setup(self._name)
        return self._logger

    def debug(self, *args, **kwargs) -> None:
        if _NUMBERS.get(LEVEL, 30) <= 10:
            self._real().debug(*args, **kwargs)

    def info(self, *args, **kwargs) -> None:
        if _NUMBERS.get(LEVEL, 30) <= 20:
            self._real().info(*args, **kwargs)

    def __getattr__(self, attribute: str):
        return getattr(self._real(), attribute)


def _setup(name: str):
    """Return logging's logger `name`, setting up the stderr handler at LEVEL the first time."""
    import logging
    import sys

    global _configured
    if not _configured:
        logging.basicConfig(level=getattr(logging, LEVEL.upper()), stream=sys.stderr,
                            format="minict: %(levelname)s: %(message)s")
        _configured = True
    return logging.getLogger(name)
