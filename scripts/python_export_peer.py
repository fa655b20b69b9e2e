#!/usr/bin/env python3
"""The Python peer of `manage export` in the benchmark (`cargo run --release --example bench`).

What a straightforward Python exporter does with the documents the Python
baseline (`scripts/python_baseline.py`) stored: read each one from the
SQLite table in key order, decode it with pymongo's `bson`, and write it
as `manage export` does: `--csv`, one row per cell
(`timestamp,x,y,values`, the cell coordinates read once from the plain
HDF5 input's first two columns) with the `csv` module; `--jsonl`, one
relaxed Extended JSON line per document (`{"_id":{"$date":...},"values":[...]}`,
null for a missing value) with the `json` module.

    python3 scripts/python_export_peer.py DB INPUT.h5 DATASET (--csv | --jsonl) OUT

Prints "peer-result ROWS" (CSV rows or JSON lines written).
"""

import csv
import json
import sqlite3
import sys

import bson


def main():
    db, source, dataset, form, out = sys.argv[1:6]
    conn = sqlite3.connect(db)
    rows = 0
    with open(out, "w", newline="") as f:
        if form == "--csv":
            import h5py

            with h5py.File(source, "r") as h:
                xy = h[dataset][:, 0:2]
            xs, ys = xy[:, 0].tolist(), xy[:, 1].tolist()
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["timestamp", "x", "y", "values"])
            for (blob,) in conn.execute("SELECT doc FROM docs ORDER BY key"):
                doc = bson.decode(blob)
                ts = doc["_id"].strftime("%Y-%m-%dT%H:%M:%SZ")
                w.writerows(
                    (ts, x, y, "" if v is None else v)
                    for x, y, v in zip(xs, ys, doc["values"])
                )
                rows += len(doc["values"])
        else:
            for (blob,) in conn.execute("SELECT doc FROM docs ORDER BY key"):
                doc = bson.decode(blob)
                line = {
                    "_id": {"$date": doc["_id"].strftime("%Y-%m-%dT%H:%M:%SZ")},
                    "values": doc["values"],
                }
                f.write(json.dumps(line, separators=(",", ":")))
                f.write("\n")
                rows += 1
    conn.close()
    print(f"peer-result {rows}")


if __name__ == "__main__":
    main()
