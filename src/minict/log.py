"""Loggers that configure logging on first use.

Importing the logging package costs about 6 ms, a tenth of a container
start, and only pull, login and garbage collection log anything. So the
command line stores the requested level here, and logging is imported and
set up when the first module requests a logger.
"""

from __future__ import annotations

LEVEL = "warning"
_configured = False


def get_logger(name: str):
    """Return the logger `name`, setting up the stderr handler at LEVEL the first time."""
    import logging
    import sys

    global _configured
    if not _configured:
        logging.basicConfig(level=getattr(logging, LEVEL.upper()), stream=sys.stderr,
                            format="minict: %(levelname)s: %(message)s")
        _configured = True
    return logging.getLogger(name)
