#!/usr/bin/env python3
"""Exit 0 when a PNG screenshot (8-bit RGB or RGBA) is not blank: at least 1% of it inked
and some strongly coloured pixels (chart lines). Usage: png_nonblank.py FILE [MIN_COLOURED]"""
import struct
import sys
import zlib


def rows_of(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = body
        if kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", ihdr[:10])
    assert depth == 8, depth
    bpp = {2: 3, 6: 4}[ctype]
    raw, stride, rows, prev, i = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def main():
    w, h, bpp, rows = rows_of(open(sys.argv[1], "rb").read())
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    ink = colour = 0
    for line in rows[::2]:
        for x in range(0, w * bpp, bpp * 2):
            r, g, b = line[x], line[x + 1], line[x + 2]
            ink += min(r, g, b) < 200
            colour += max(r, g, b) - min(r, g, b) > 80
    total = (h // 2) * (w // 2)
    assert ink > total * 0.01, ("blank", ink, total)
    assert colour > want, ("no coloured lines", colour)
    print("ink", ink, "coloured", colour)


main()
