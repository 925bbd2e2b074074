"""Layer unpacking: decompression and the tar applier."""
