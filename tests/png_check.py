#!/usr/bin/env python3
"""png_check.py — is a screenshot more than a blank page? Reads an 8-bit RGB(A) PNG with the
standard library alone (zlib; no PIL) and prints its size, the number of distinct colours and
the share of pixels that are not white, over every 4th row.

usage: png_check.py FILE.png MIN_COLOURS MIN_INK_SHARE     exit 0 when both are reached
"""
import struct
import sys
import zlib


def rows_of(path):
    """(width, height, bytes per pixel, [row bytes]) of an 8-bit RGB or RGBA PNG."""
    data = open(path, 'rb').read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat = 8, []
    w = h = bpp = 0
    while pos < len(data):
        n, typ = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError('only 8-bit RGB/RGBA, not interlaced')
            bpp = 3 if ctype == 2 else 4
        elif typ == b'IDAT':
            idat.append(body)
        pos += 12 + n
    raw = zlib.decompress(b''.join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    out = []
    i = 0
    for _ in range(h):
        ft = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if ft == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif ft == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif ft == 3:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((a + prev[x]) >> 1)) & 255
        elif ft == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line))
        prev = line
    return w, h, bpp, out


def main():
    path, min_colours, min_ink = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    w, h, bpp, rows = rows_of(path)
    colours, ink, seen = set(), 0, 0
    for row in rows[::4]:
        for x in range(0, len(row), bpp):
            px = row[x:x + 3]
            colours.add(px)
            ink += px != b'\xff\xff\xff'
            seen += 1
    share = ink / seen if seen else 0
    print(f'{path}: {w}x{h}, {len(colours)} distinct colours, {100 * share:.1f}% not white')
    return 0 if len(colours) >= min_colours and share >= min_ink else 1


if __name__ == '__main__':
    sys.exit(main())
