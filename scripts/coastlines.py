#!/usr/bin/env python3
"""Write assets/coastlines-110m.bin and assets/coastlines-50m.bin, the
coastlines `manage plot` draws, from Natural Earth's land polygons as the
npm package world-atlas ships them (TopoJSON, public domain data).

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python3 scripts/coastlines.py /tmp/package

The format: b"FXCOAST1", then u32 number of lines; per line a u32 number of
points, then that many (i16 longitude, i16 latitude) in hundredths of a
degree; all little-endian. The land outlines' edges that lie on the
antimeridian, cross it, or lie on the southern edge of the data (cuts of
the map, not coast) are left out, which splits an outline into several lines.
"""
import json
import struct
import sys
from pathlib import Path


def arcs_of(topology):
    """Every arc of the topology as a list of (lon, lat), undoing the
    quantisation and delta encoding."""
    sx, sy = topology["transform"]["scale"]
    tx, ty = topology["transform"]["translate"]
    out = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        out.append(points)
    return out


def is_cut(a, b, bottom):
    on_meridian = abs(a[0]) > 179.99 and abs(b[0]) > 179.99
    across_meridian = abs(a[0] - b[0]) > 180
    # Antarctica's outline closes along the southern edge of the data
    # (-85.6 in world-atlas, -90 in Natural Earth's own files).
    on_pole = a[1] < bottom + 0.01 and b[1] < bottom + 0.01
    return on_meridian or across_meridian or on_pole


def lines_of(points, bottom):
    """Split an arc where an edge is a cut, not coast."""
    lines, current = [], [points[0]]
    for a, b in zip(points, points[1:]):
        if is_cut(a, b, bottom):
            if len(current) > 1:
                lines.append(current)
            current = [b]
        else:
            current.append(b)
    if len(current) > 1:
        lines.append(current)
    return lines


def encode(lines):
    out = bytearray(b"FXCOAST1")
    out += struct.pack("<I", len(lines))
    for line in lines:
        q = [(round(x * 100), round(y * 100)) for x, y in line]
        # Drop repeated points after rounding.
        q = [p for k, p in enumerate(q) if k == 0 or p != q[k - 1]]
        out += struct.pack("<I", len(q))
        for x, y in q:
            out += struct.pack("<hh", x, y)
    return bytes(out)


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "package")
    assets = Path(__file__).resolve().parent.parent / "assets"
    for res in ["110m", "50m"]:
        topology = json.loads((src / f"land-{res}.json").read_text())
        arcs = arcs_of(topology)
        bottom = min(y for arc in arcs for _, y in arc)
        lines = [l for arc in arcs for l in lines_of(arc, bottom)]
        data = encode(lines)
        (assets / f"coastlines-{res}.bin").write_bytes(data)
        points = sum(len(l) for l in lines)
        print(f"coastlines-{res}.bin: {len(lines)} lines, {points} points, {len(data)} bytes")


if __name__ == "__main__":
    main()
