"""Platforms (os/architecture/variant) and the choice of a manifest from an index."""

from __future__ import annotations

import os
from collections import namedtuple

from minict.errors import InvalidArgument, NotFound

# uname -m to the GOARCH names that image indexes use.
_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


class Platform(namedtuple("Platform", "os architecture variant", defaults=("",))):
    """An image platform such as linux/arm64/v8, as a named tuple so that it loads without dataclasses."""

    __slots__ = ()

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def host_platform() -> Platform:
    """Return the platform of this machine, as image indexes name it."""
    machine = os.uname().machine
    arch, variant = _MACHINE_TO_ARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    """Parse os/arch[/variant], such as linux/arm64/v8."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: use OS/ARCH[/VARIANT], such as linux/arm64/v8")
    variant = parts[2] if len(parts) == 3 else ""
    arch = parts[1]
    if arch == "arm64" and variant == "":
        variant = "v8"
    return Platform(parts[0], arch, variant)


def _normalize_variant(arch: str, variant: str) -> str:
    # arm64 images often omit the variant; it means v8.
    if arch == "arm64" and variant in ("", "v8"):
        return "v8"
    return variant


def descriptor_platform(descriptor: dict) -> Platform | None:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return None
    return Platform(str(platform.get("os", "")), str(platform.get("architecture", "")), str(platform.get("variant", "")))


def choose_manifest(descriptors: list[dict], wanted: Platform, reference: str) -> dict:
    """Return the index entry for `wanted`, skipping attestations (unknown/unknown).

    An entry without a variant matches any variant when no entry names the
    wanted variant exactly. Raises NotFound listing the available platforms.
    """
    wanted_variant = _normalize_variant(wanted.architecture, wanted.variant)
    candidates = []
    available = []
    for descriptor in descriptors:
        platform = descriptor_platform(descriptor)
        if platform is None or platform.os == "unknown" or platform.architecture == "unknown":
            continue
        available.append(str(platform))
        if platform.os != wanted.os or platform.architecture != wanted.architecture:
            continue
        variant = _normalize_variant(platform.architecture, platform.variant)
        if variant == wanted_variant:
            return descriptor
        if not platform.variant or not wanted_variant:
            candidates.append(descriptor)
    if candidates:
        return candidates[0]
    listing = ", ".join(sorted(set(available))) or "none"
    raise NotFound(
        f"{reference} has no image for {wanted}; available platforms: {listing}. "
        "Choose one with --platform OS/ARCH[/VARIANT]"
    )
