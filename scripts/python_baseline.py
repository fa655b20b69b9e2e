#!/usr/bin/env python3
"""The Python baseline of the load benchmark (`cargo run --release --example bench`).

What a straightforward Python loader does with one gridded flux file: read
the matrix (h5py for HDF5 and MATLAB v7.3, SciPy for MAT v5, netCDF4 for
NetCDF), round each time step's values with numpy (NaN, infinities and
masked values as null), encode each step as the BSON document
{_id: date, values: [...]} with pymongo's C encoder, and insert every
document into a SQLite table in one transaction.

    python3 scripts/python_baseline.py FILE VARIABLE DB [--matlab | --mat5 | --netcdf] [--precision N]

FILE is HDF5 (or MATLAB v7.3, whose matrices are stored transposed: give
--matlab), a MAT v5 file (--mat5), or a NetCDF file (--netcdf, VARIABLE a
`time × latitude × longitude` variable; each step's grid is one document).
Values are rounded to N decimals (default 2). Prints "baseline-result
SECONDS" (wall time from opening the file to the commit).
"""

import datetime
import sqlite3
import sys
import time

import bson
import numpy as np


def steps(path, variable, form):
    """Each step's values, as a 1-D float array (NaN where there is none)."""
    if form == "netcdf":
        import netCDF4

        with netCDF4.Dataset(path) as f:
            v = f.variables[variable]
            for k in range(v.shape[0]):
                step = np.ma.filled(v[k].astype(np.float64), np.nan)
                yield step.ravel()
        return
    if form == "mat5":
        import scipy.io

        m = scipy.io.loadmat(path, variable_names=[variable])[variable]
    else:
        import h5py

        with h5py.File(path, "r") as f:
            m = f[variable][()]
        if form == "matlab":
            m = m.T
    for k in range(m.shape[1] - 2):
        yield m[:, 2 + k]


def main():
    path, variable, db = sys.argv[1:4]
    rest = sys.argv[4:]
    form = "hdf5"
    for flag, name in (("--matlab", "matlab"), ("--mat5", "mat5"), ("--netcdf", "netcdf")):
        if flag in rest:
            form = name
    precision = int(rest[rest.index("--precision") + 1]) if "--precision" in rest else 2
    started = time.perf_counter()
    start = datetime.datetime(2004, 1, 1, tzinfo=datetime.timezone.utc)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS docs (key BLOB PRIMARY KEY, doc BLOB NOT NULL)")
    with conn:
        for k, step in enumerate(steps(path, variable, form)):
            col = np.round(step, precision)
            finite = np.isfinite(col)
            values = [float(v) if ok else None for v, ok in zip(col.tolist(), finite.tolist())]
            when = start + datetime.timedelta(hours=3 * k)
            doc = bson.encode({"_id": when, "values": values})
            conn.execute("INSERT OR REPLACE INTO docs VALUES (?, ?)", (when.isoformat(), doc))
    conn.close()
    print(f"baseline-result {time.perf_counter() - started}")


if __name__ == "__main__":
    main()
