"""Layer unpacking: decompression and the tar applier."""

# The two snapshot formats: overlayfs lower directories with overlay whiteouts, or
# full copies. They live here rather than in applier, so a container start, which
# needs only the names, does not import the applier and its dependencies.
OVERLAY = "overlay"
NATIVE = "native"
