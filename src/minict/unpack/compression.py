"""Streaming decompression of layer blobs: gzip, zstd or none, detected by magic bytes."""

from __future__ import annotations

import sys

from minict.errors import LayerError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def _new_gzip():
    try:
        from isal import isal_zlib

        return isal_zlib.decompressobj(31)
    except ImportError:  # the isal wheel is missing: the stdlib is slower but correct
        import zlib

        return zlib.decompressobj(31)


def _new_zstd():
    if sys.version_info >= (3, 14):
        from compression.zstd import ZstdDecompressor
    else:
        from backports.zstd import ZstdDecompressor
    return ZstdDecompressor()


class StreamDecompressor:
    """Decompress a layer fed in chunks. Concatenated gzip members and zstd frames are allowed."""

    def __init__(self, what: str):
        self.what = what
        self.kind: str | None = None
        self._object = None
        self._pending = b""

    def _new_object(self):
        return _new_gzip() if self.kind == "gzip" else _new_zstd()

    def decompress(self, chunk: bytes) -> bytes:
        if self.kind is None:
            self._pending += chunk
            if len(self._pending) < 4:
                return b""
            self.kind = detect(self._pending)
            chunk, self._pending = self._pending, b""
            if self.kind != "none":
                self._object = self._new_object()
        if self.kind == "none":
            return chunk
        output = []
        try:
            while chunk:
                output.append(self._object.decompress(chunk))
                if not self._object.eof:
                    break
                chunk = self._object.unused_data
                if chunk:
                    self._object = self._new_object()
        except Exception as error:  # zlib.error, isal_zlib.error and ZstdError share no base class
            raise LayerError(f"{self.what}: corrupt {self.kind} data: {error}") from error
        return b"".join(output)

    def finish(self) -> bytes:
        """Return what remains and raise LayerError if the stream was cut short."""
        if self.kind is None:
            # Fewer than 4 bytes in all: treat as uncompressed.
            self.kind = "none"
            data, self._pending = self._pending, b""
            return data
        if self.kind == "none":
            return b""
        if not self._object.eof:
            raise LayerError(f"{self.what}: the {self.kind} stream is truncated")
        return b""
