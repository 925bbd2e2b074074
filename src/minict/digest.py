"""Content digests ("sha256:<64 hex>") and a hashing writer that checks them."""

from __future__ import annotations

import re

from minict.errors import ContentError, InvalidArgument

# Algorithms minict can verify. The OCI image spec registers sha256 and sha512.
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


def parse_digest(value: str) -> tuple[str, str]:
    """Split and validate a digest, returning (algorithm, hex).

    Raises InvalidArgument for an unknown algorithm or an encoded part of the
    wrong length or alphabet.
    """
    match = _DIGEST_RE.match(value)
    if not match:
        raise InvalidArgument(f"invalid digest {value!r}: expected ALGORITHM:HEX, such as sha256:<64 hex digits>")
    algorithm, encoded = match.groups()
    if algorithm not in _HEX_LENGTH:
        raise InvalidArgument(f"unsupported digest algorithm in {value!r}: use sha256 or sha512")
    if len(encoded) != _HEX_LENGTH[algorithm] or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise InvalidArgument(
            f"invalid digest {value!r}: {algorithm} needs {_HEX_LENGTH[algorithm]} lower-case hex digits"
        )
    return algorithm, encoded


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Return the digest string of a byte string."""
    import hashlib  # here, not at the top: it loads OpenSSL, about 2.5 ms that a container start does not need

    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Verifier:
    """Hash a stream and check it against an expected digest and size at the end."""

    def __init__(self, expected_digest: str, expected_size: int | None, what: str):
        self.algorithm, self.expected_hex = parse_digest(expected_digest)
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.what = what
        import hashlib

        self.hasher = hashlib.new(self.algorithm)
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise ContentError(
                f"{self.what}: received more than the {self.expected_size} bytes its descriptor declares; "
                "the registry sent the wrong content"
            )
        self.hasher.update(chunk)

    def verify(self) -> None:
        """Raise ContentError unless the stream hashed to the expected digest and size."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise ContentError(
                f"{self.what}: received {self.size} bytes, but its descriptor declares {self.expected_size}"
            )
        actual = self.hasher.hexdigest()
        if actual != self.expected_hex:
            raise ContentError(
                f"{self.what}: content hashes to {self.algorithm}:{actual}, expected {self.expected_digest}"
            )
