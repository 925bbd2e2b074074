"""Parse WWW-Authenticate challenges (RFC 7235) as registries send them."""

from __future__ import annotations

import re

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Unquoted values are tokens in RFC 7235; some servers send bare URLs, so any
# run of characters without a comma, quote or space is accepted.
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s"]+))\s*(?:,|$)')
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Return [(scheme, params)] for a WWW-Authenticate header value.

    The scheme is lower-cased. Quoted values are unescaped. A header may carry
    several challenges, for example `Bearer realm="...",service="x", Basic realm="y"`.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    position = 0
    while position < len(header):
        scheme_match = _SCHEME_RE.match(header, position)
        if not scheme_match:
            break
        scheme = scheme_match.group(1).lower()
        position = scheme_match.end()
        params: dict[str, str] = {}
        while position < len(header):
            param_match = _PARAM_RE.match(header, position)
            if not param_match:
                break
            # A following "Scheme name=..." is a new challenge, not a parameter.
            if param_match.group(2) is None and param_match.group(3) is not None:
                rest = header[param_match.start() :].lstrip()
                if re.match(rf"{_TOKEN}\s+{_TOKEN}\s*=", rest):
                    break
            name = param_match.group(1).lower()
            if param_match.group(2) is not None:
                value = re.sub(r"\\(.)", r"\1", param_match.group(2))
            else:
                value = param_match.group(3)
            params[name] = value
            position = param_match.end()
        challenges.append((scheme, params))
        while position < len(header) and header[position] in ", ":
            position += 1
    return challenges
