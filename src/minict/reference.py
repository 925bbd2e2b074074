"""Image references, parsed and normalized with Docker's rules.

    alpine                       -> docker.io/library/alpine:latest
    user/app                     -> docker.io/user/app:latest
    127.0.0.1:5000/app:1.0       -> 127.0.0.1:5000/app:1.0
    app@sha256:<hex>             -> docker.io/library/app@sha256:<hex>
    app:1.0@sha256:<hex>         -> the digest decides what is pulled; the tag is kept as a label
    localhost/app                -> localhost/app:latest

The first path component is a registry host when it contains "." or ":", is
"localhost", or has upper-case letters (which a repository may not have).
"""

from __future__ import annotations

import re
from collections import namedtuple

from minict.digest import parse_digest
from minict.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


# A named tuple, not a dataclass: importing dataclasses costs every command about 5 ms.
class Reference(namedtuple("Reference", "domain path tag digest", defaults=(None, None))):
    """A normalized image reference: registry domain, repository path, tag and digest."""

    __slots__ = ()

    @property
    def repository(self) -> str:
        """The full repository name, such as docker.io/library/alpine."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """Return the short form users type: alpine:3.20, user/app:1, 127.0.0.1:5000/busybox:latest."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            if path.startswith(OFFICIAL_NAMESPACE + "/") and path.count("/") == 1:
                path = path[len(OFFICIAL_NAMESPACE) + 1 :]
            text = path
        else:
            text = f"{self.domain}/{path}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, name
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return first, rest
    return DEFAULT_DOMAIN, name


def parse_reference(text: str) -> Reference:
    """Parse and normalize an image reference, raising InvalidArgument with the reason."""
    if not text:
        raise InvalidArgument("invalid reference: the image name is empty; give one such as alpine:3.20")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidArgument(f"invalid reference {text!r}: it contains white space")

    name, digest = text, None
    if "@" in text:
        name, _, digest = text.partition("@")
        parse_digest(digest)

    tag = None
    # A ":" after the last "/" starts the tag; one before it belongs to host:port.
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(
                f"invalid reference {text!r}: tag {tag!r} must be 1-128 characters of letters, digits, "
                "'_', '.' and '-', not starting with '.' or '-'"
            )
    if not name:
        raise InvalidArgument(f"invalid reference {text!r}: the repository name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"invalid reference {text[:80]!r}...: the name is longer than {MAX_NAME_LENGTH} characters")

    domain, path = _split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise InvalidArgument(f"invalid reference {text!r}: {domain!r} is not a valid registry host[:port]")
    for component in path.split("/"):
        if not _PATH_COMPONENT_RE.match(component):
            if component.lower() != component and _PATH_COMPONENT_RE.match(component.lower()):
                raise InvalidArgument(
                    f"invalid reference {text!r}: repository name must be lowercase (try {text.lower()!r})"
                )
            raise InvalidArgument(
                f"invalid reference {text!r}: path component {component!r} must be lower-case letters and "
                "digits separated by '.', '_', '__' or '-'"
            )

    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)
