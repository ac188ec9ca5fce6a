#!/usr/bin/env python3
"""Draws eng/icon.png, the packages' icon (128x128): three priority tiers as bars, the first one lit, on Polly's blue.
Pure Python (zlib + struct), so it needs nothing installed and gives the same bytes on every run."""
import struct
import zlib
from pathlib import Path

SIZE = 128
BACKGROUND = (0x1F, 0x4E, 0x8C, 255)   # deep blue
TIER_1 = (0xFF, 0xC1, 0x07, 255)       # amber: the tier tried first
TIERS = (0xE3, 0xEC, 0xF7, 255)        # pale: the tiers behind it
CLEAR = (0, 0, 0, 0)


def pixel(x, y):
    # A rounded square: corners of radius 20 are transparent.
    r = 20
    cx = min(max(x, r), SIZE - 1 - r)
    cy = min(max(y, r), SIZE - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return CLEAR
    # Three bars, one per tier, narrowing like spill-over from tier 1 to tier 3.
    for top, left, right, colour in ((26, 24, 104, TIER_1), (56, 24, 88, TIERS), (86, 24, 72, TIERS)):
        if top <= y < top + 18 and left <= x < right:
            return colour
    return BACKGROUND


def png(width, height, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


rows = [[pixel(x, y) for x in range(SIZE)] for y in range(SIZE)]
Path(__file__).with_name("icon.png").write_bytes(png(SIZE, SIZE, rows))
