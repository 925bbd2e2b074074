"""Facts of the OCI runtime spec that both of minict's command lines use, in a module cheap to import."""

from __future__ import annotations

from minict.errors import InvalidArgument

OCI_VERSION = "1.0.2"


def signal_number(text: str, flag: str = "--signal") -> int:
    """Parse a signal as a number or a name, with or without SIG (KILL, SIGKILL, 9)."""
    import signal

    value = text.strip().upper()
    if value.isdigit():
        number = int(value)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = value if value.startswith("SIG") else "SIG" + value
        number = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if number is not None:
            return int(number)
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
            offset = name[8:]
            if not offset or (offset[0] in "+-" and offset[1:].isdigit()):
                number = int(base) + (int(offset) if offset else 0)
                if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                    return number
    raise InvalidArgument(f"invalid {flag} {text!r}: use a signal name such as TERM or SIGKILL, or a number")
