"""Turning integer byte counts and rates into the short text a person reads.

Sizes are shown in binary units (1 GB here = 1024**3 bytes) but labelled "GB",
as llama.cpp, LM Studio, Windows Explorer and nvidia-smi's rounding all do: a
card sold as "24 GB" has 24 GiB of VRAM and should read "24.0 GB", not "25.8 GB".
Rates (memory bandwidth) are shown in decimal GB/s (1e9 bytes per second)
because that is how GPU and RAM spec sheets state them: an RTX 4090 reads
"1008 GB/s" here and on NVIDIA's page.

Bytes stay integers everywhere else in the program; these helpers are only for
the moment a number is shown.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

_SIZE_STEPS = ((TIB, "TB"), (GIB, "GB"), (MIB, "MB"), (KIB, "KB"))


def format_bytes(n: int | None) -> str:
    """Return a size such as ``"23.4 GB"`` (binary units, see the module docstring).

    One decimal for GB and TB, whole numbers for MB and KB, "unknown" for None.
    """
    if n is None:
        return "unknown"
    sign = "-" if n < 0 else ""
    size = abs(n)
    for step, label in _SIZE_STEPS:
        if size >= step:
            value = size / step
            if label in ("GB", "TB"):
                return f"{sign}{value:.1f} {label}"
            return f"{sign}{value:.0f} {label}"
    return f"{sign}{size} B"


def format_bandwidth(bytes_per_s: int | None) -> str:
    """Return a rate such as ``"1008 GB/s"`` or ``"12.3 GB/s"`` (decimal units)."""
    if bytes_per_s is None:
        return "unknown"
    gb_per_s = bytes_per_s / 1e9
    if gb_per_s >= 100:
        return f"{gb_per_s:.0f} GB/s"
    if gb_per_s >= 1:
        return f"{gb_per_s:.1f} GB/s"
    return f"{bytes_per_s / 1e6:.0f} MB/s"
