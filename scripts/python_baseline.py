#!/usr/bin/env python3
"""The Python baseline of the load benchmark (`cargo run --release --example bench`).

What a straightforward Python loader does with one gridded flux file: read
the matrix with h5py, round each time step's values with numpy (NaN and
infinities as null), encode each step as the BSON document
{_id: date, values: [...]} with pymongo's C encoder, and insert every
document into a SQLite table in one transaction.

    python3 scripts/python_baseline.py FILE DATASET DB [--matlab]

FILE is HDF5 (or MATLAB v7.3, whose matrices are stored transposed: give
--matlab). Prints "baseline-result SECONDS" (wall time from opening the file
to the commit).
"""

import datetime
import sqlite3
import sys
import time

import bson
import h5py
import numpy as np


def main():
    path, dataset, db = sys.argv[1:4]
    matlab = "--matlab" in sys.argv[4:]
    started = time.perf_counter()
    with h5py.File(path, "r") as f:
        m = f[dataset][()]
    if matlab:
        m = m.T
    start = datetime.datetime(2004, 1, 1, tzinfo=datetime.timezone.utc)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS docs (key BLOB PRIMARY KEY, doc BLOB NOT NULL)")
    with conn:
        for k in range(m.shape[1] - 2):
            col = np.round(m[:, 2 + k], 2)
            finite = np.isfinite(col)
            values = [float(v) if ok else None for v, ok in zip(col.tolist(), finite.tolist())]
            when = start + datetime.timedelta(hours=3 * k)
            doc = bson.encode({"_id": when, "values": values})
            conn.execute("INSERT OR REPLACE INTO docs VALUES (?, ?)", (when.isoformat(), doc))
    conn.close()
    print(f"baseline-result {time.perf_counter() - started}")


if __name__ == "__main__":
    main()
