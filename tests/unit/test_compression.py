import gzip
import os

import pytest
from backports import zstd

from minict.errors import LayerError
from minict.unpack.compression import StreamDecompressor


def feed(data: bytes, chunk: int = 7) -> bytes:
    decompressor = StreamDecompressor("layer x")
    out = [decompressor.decompress(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    out.append(decompressor.finish())
    return b"".join(out)


PAYLOAD = os.urandom(5000) + b"tar" * 3000


@pytest.mark.parametrize("compress", [gzip.compress, zstd.compress, lambda data: data], ids=["gzip", "zstd", "none"])
def test_decompress_formats(compress):
    assert feed(compress(PAYLOAD)) == PAYLOAD


def test_decompress_concatenated_gzip_members():
    assert feed(gzip.compress(b"one") + gzip.compress(b"two")) == b"onetwo"


def test_decompress_concatenated_zstd_frames():
    assert feed(zstd.compress(b"one") + zstd.compress(b"two")) == b"onetwo"


@pytest.mark.parametrize("compress", [gzip.compress, zstd.compress], ids=["gzip", "zstd"])
def test_decompress_truncated_rejected(compress):
    data = compress(PAYLOAD)
    with pytest.raises(LayerError) as caught:
        feed(data[: len(data) // 2])
    assert "truncated" in str(caught.value)


def test_decompress_corrupt_gzip_rejected():
    data = bytearray(gzip.compress(PAYLOAD))
    data[20:40] = b"\xff" * 20
    with pytest.raises(LayerError) as caught:
        feed(bytes(data))
    assert "corrupt gzip data" in str(caught.value)
