"""Reference for the NetCDF tests, written with netCDF4-python and numpy.

  cf_reference.py expect FILE VAR    the documents a CF grid must load to, as JSON
  cf_reference.py odd DIR            write odd.nc: a valid CF grid laid out unlike the fixtures
  cf_reference.py bad DIR            write the malformed CF files of the hostile-input tests
  cf_reference.py big FILE STEPS     write a 0.5 degree global grid of STEPS 3-hourly steps

`expect` reads the file with netCDF4's own masking and unpacking, orders the
cells south to north and west to east (longitudes in -180..180), and rounds
values as the old tool did (float('%.10f' % x)).
"""

import json
import sys

import netCDF4
import numpy as np


def axis_of(var):
    attrs = {k: var.getncattr(k) for k in var.ncattrs()}
    sn = str(attrs.get("standard_name", ""))
    if sn in ("time", "latitude", "longitude"):
        return sn
    units = str(attrs.get("units", ""))
    if units == "degrees_north":
        return "latitude"
    if units == "degrees_east":
        return "longitude"
    if " since " in units:
        return "time"
    return {"T": "time", "Y": "latitude", "X": "longitude"}.get(attrs.get("axis"))


def iso(d):
    """A time as MongoDB's relaxed Extended JSON writes it."""
    ms = round(d.microsecond / 1000)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (".%03d" % ms if ms else "") + "Z"


def expect(path, name, precision=10):
    ds = netCDF4.Dataset(path)
    var = ds[name]
    var.set_auto_maskandscale(True)
    axes = [axis_of(ds[d]) if d in ds.variables else None for d in var.dimensions]
    data = var[:]
    # Drop dimensions of length 1 that are no axis, then order (time, lat, lon).
    for i in reversed(range(len(axes))):
        if axes[i] is None:
            data = data.take(0, axis=i)
    axes = [a for a in axes if a is not None]
    data = np.ma.transpose(data, [axes.index(a) for a in ("time", "latitude", "longitude")])
    dims = {a: var.dimensions[[axis_of(ds[d]) if d in ds.variables else None for d in var.dimensions].index(a)] for a in ("time", "latitude", "longitude")}
    lat = np.asarray(ds[dims["latitude"]][:], dtype=np.float64)
    lon = np.asarray(ds[dims["longitude"]][:], dtype=np.float64)
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    lat_order = np.argsort(lat, kind="stable")
    lon_order = np.argsort(lon, kind="stable")
    t = ds[dims["time"]]
    times = netCDF4.num2date(t[:], t.units, getattr(t, "calendar", "standard"),
                             only_use_cftime_datetimes=False, only_use_python_datetimes=True)
    coords = [[round(float(lon[j]), 5), round(float(lat[i]), 5)] for i in lat_order for j in lon_order]
    values = []
    for k in range(data.shape[0]):
        step = data[k][lat_order][:, lon_order].reshape(-1)
        mask = np.ma.getmaskarray(step)
        raw = np.ma.getdata(step).astype(np.float64)
        values.append([None if m or not np.isfinite(x) else float("%.*f" % (precision, x)) + 0.0
                       for x, m in zip(raw.tolist(), mask.tolist())])
    out = {
        "coords": coords,
        "times": [iso(d) for d in times],
        "values": values,
        "title": getattr(ds, "title", None),
        "units": getattr(var, "units", None),
    }
    json.dump(out, sys.stdout)


def grid_file(path, fmt="NETCDF4"):
    ds = netCDF4.Dataset(path, "w", format=fmt)
    ds.title = "bad"
    ds.createDimension("time", 2)
    ds.createDimension("lat", 3)
    ds.createDimension("lon", 4)
    t = ds.createVariable("time", "f8", ("time",))
    t.units = "hours since 2004-06-30 00:00:00"
    t.standard_name = "time"
    t[:] = [0, 3]
    la = ds.createVariable("lat", "f4", ("lat",))
    la.units = "degrees_north"
    la[:] = [-1, 0, 1]
    lo = ds.createVariable("lon", "f4", ("lon",))
    lo.units = "degrees_east"
    lo[:] = [0, 1, 2, 3]
    return ds


def bad(d):
    # No time axis: a variable over latitude and longitude only.
    ds = grid_file(d + "/no_time.nc")
    v = ds.createVariable("flux", "f4", ("lat", "lon"))
    v[:] = np.ones((3, 4))
    ds.close()
    # A 1-D variable.
    ds = grid_file(d + "/one_d.nc")
    v = ds.createVariable("flux", "f4", ("time",))
    v[:] = [1, 2]
    ds.close()
    # A latitude that is not monotonic.
    ds = grid_file(d + "/not_monotonic.nc")
    ds["lat"][:] = [0, -1, 1]
    v = ds.createVariable("flux", "f4", ("time", "lat", "lon"))
    v[:] = np.ones((2, 3, 4))
    ds.close()
    # A time unit that does not parse.
    ds = grid_file(d + "/bad_time_unit.nc")
    ds["time"].units = "fortnights since 2004-06-30"
    v = ds.createVariable("flux", "f4", ("time", "lat", "lon"))
    v[:] = np.ones((2, 3, 4))
    ds.close()
    # A variable of strings.
    ds = grid_file(d + "/strings.nc")
    v = ds.createVariable("flux", str, ("time", "lat", "lon"))
    for k in range(2):
        for i in range(3):
            for j in range(4):
                v[k, i, j] = "x"
    ds.close()
    # A calendar manage does not convert.
    ds = grid_file(d + "/noleap.nc")
    ds["time"].calendar = "noleap"
    v = ds.createVariable("flux", "f4", ("time", "lat", "lon"))
    v[:] = np.ones((2, 3, 4))
    ds.close()
    # Times that go back.
    ds = grid_file(d + "/time_back.nc")
    ds["time"][:] = [3, 0]
    v = ds.createVariable("flux", "f4", ("time", "lat", "lon"))
    v[:] = np.ones((2, 3, 4))
    ds.close()


def odd(d):
    """A CF grid with other names, dimension order (lon, level, lat, time),
    longitudes 0..360, descending latitude, irregular times in seconds,
    packing with add_offset, missing_value and valid_range, NetCDF-3 64-bit."""
    ds = netCDF4.Dataset(d + "/odd.nc", "w", format="NETCDF3_64BIT_OFFSET")
    ds.title = "Odd layout"
    ds.createDimension("x", 4)
    ds.createDimension("level", 1)
    ds.createDimension("y", 3)
    ds.createDimension("t", 3)
    x = ds.createVariable("x", "f8", ("x",))
    x.standard_name = "longitude"
    x[:] = [90.0, 180.0, 270.0, 360.0 - 0.5]
    y = ds.createVariable("y", "f8", ("y",))
    y.axis = "Y"
    y.units = "degrees"
    y[:] = [45.0, 0.0, -45.0]
    lev = ds.createVariable("level", "f4", ("level",))
    lev.units = "hPa"
    lev[:] = [1000]
    t = ds.createVariable("t", "f8", ("t",))
    t.units = "seconds since 2010-01-01T00:00:00Z"
    t.calendar = "proleptic_gregorian"
    t[:] = [0, 3600, 3600 * 7]
    v = ds.createVariable("co2", "i2", ("x", "level", "y", "t"))
    v.units = "umol m-2 s-1"
    v.scale_factor = 0.01
    v.add_offset = 5.0
    v.missing_value = np.int16(-999)
    v.valid_range = np.array([-500, 500], dtype=np.int16)
    v.set_auto_maskandscale(False)
    rng = np.random.default_rng(7)
    raw = rng.integers(-400, 400, size=(4, 1, 3, 3)).astype(np.int16)
    raw[0, 0, 0, :] = -999       # missing at every step
    raw[1, 0, 2, 1] = 600        # outside valid_range
    v[:] = raw
    ds.close()


def big(path, steps):
    ds = netCDF4.Dataset(path, "w", format="NETCDF4")
    ds.title = "Benchmark: 0.5 degree global 3-hourly flux"
    ds.createDimension("time", None)
    ds.createDimension("latitude", 360)
    ds.createDimension("longitude", 720)
    t = ds.createVariable("time", "f8", ("time",))
    t.units = "days since 2000-01-01 00:00:00"
    t.calendar = "standard"
    t.standard_name = "time"
    la = ds.createVariable("latitude", "f4", ("latitude",))
    la.standard_name = "latitude"
    la.units = "degrees_north"
    la[:] = np.arange(-89.75, 90, 0.5)
    lo = ds.createVariable("longitude", "f4", ("longitude",))
    lo.standard_name = "longitude"
    lo.units = "degrees_east"
    lo[:] = np.arange(-179.75, 180, 0.5)
    v = ds.createVariable("flux", "f4", ("time", "latitude", "longitude"),
                          fill_value=np.float32(-1e34), chunksizes=(1, 360, 720))
    v.units = "mol m-2 s-1"
    lat = np.radians(np.arange(-89.75, 90, 0.5))[:, None]
    lon = np.radians(np.arange(-179.75, 180, 0.5))[None, :]
    base = (np.cos(2 * lat) * np.sin(3 * lon)).astype(np.float32) * 1e-6
    for k0 in range(0, steps, 100):
        n = min(100, steps - k0)
        block = np.empty((n, 360, 720), dtype=np.float32)
        for j in range(n):
            block[j] = base * np.float32(np.cos((k0 + j) / 8.0))
        block[:, :60, :] = np.float32(-1e34)
        v[k0:k0 + n] = block
        t[k0:k0 + n] = 1642.0625 + np.arange(k0, k0 + n) / 8.0
    ds.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "expect":
        # The precision the dataset was stored at (CFGrid settles it from the file).
        expect(sys.argv[2], sys.argv[3], *(int(p) for p in sys.argv[4:5]))
    elif cmd == "bad":
        bad(sys.argv[2])
    elif cmd == "odd":
        odd(sys.argv[2])
    elif cmd == "big":
        big(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("unknown command " + cmd)
