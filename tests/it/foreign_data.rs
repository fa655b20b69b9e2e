//! Read nothing but the input file: HDF5 external raw storage, external
//! links and virtual datasets with sources in other files are refused by
//! name, before anything they point to is opened. Every file they point to
//! here is a FIFO with no writer: opening it for reading would block, so a
//! run that touched it would not come back (the runs are given 60 s).
//! Files are made with h5py, an independent writer.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{python_with, run_python, sample, Env, Run};

const STM: &str = "SpatioTemporalMatrix";

/// Writes the hostile files into argv[1]; argv[2] is the FIFO they point to.
const MAKE: &str = r#"
import sys, os, h5py, numpy as np
d, fifo = sys.argv[1], sys.argv[2]
a = np.arange(40, dtype='f8').reshape(4, 10)
p = lambda n: os.path.join(d, n)
with h5py.File(p('ext_raw.h5'), 'w') as f:
    f.create_dataset('m', shape=(4, 10), dtype='f8', external=[(fifo, 0, h5py.h5f.UNLIMITED)])
with h5py.File(p('ext_link.h5'), 'w') as f:
    f['m'] = h5py.ExternalLink(fifo, '/m')
with h5py.File(p('ext_group.h5'), 'w') as f:
    f['local'] = a
    f['g'] = h5py.ExternalLink(fifo, '/')
with h5py.File(p('soft_to_ext.h5'), 'w') as f:
    f['a_ext'] = h5py.ExternalLink(fifo, '/')
    f['m'] = h5py.SoftLink('/a_ext/m')
with h5py.File(p('ext_first.h5'), 'w') as f:
    f['a'] = h5py.ExternalLink(fifo, '/m')
    f['b'] = a
for name, maxshape in (('vds_other.h5', None), ('vds_unlimited.h5', (4, None))):
    lay = h5py.VirtualLayout(shape=(4, 10), maxshape=maxshape, dtype='f8')
    lay[:, :] = h5py.VirtualSource(fifo, 'm', shape=(4, 10))
    with h5py.File(p(name), 'w') as f:
        f['local'] = a
        f.create_virtual_dataset('m', lay)
lay = h5py.VirtualLayout(shape=(4, 10), dtype='f8')
lay[:, :5] = h5py.VirtualSource('.', 'src', shape=(4, 5))
lay[:, 5:] = h5py.VirtualSource(fifo, 'm', shape=(4, 5))
with h5py.File(p('vds_mixed.h5'), 'w') as f:
    f['src'] = a[:, :5]
    f.create_virtual_dataset('m', lay)
lay = h5py.VirtualLayout(shape=(4, 10), dtype='f8')
lay[:, :] = h5py.VirtualSource('.', 'src', shape=(4, 10))
with h5py.File(p('vds_same.h5'), 'w') as f:
    f['src'] = a
    f.create_virtual_dataset('m', lay)
def v73(name, fill):
    with h5py.File(p(name), 'w', userblock_size=512) as f:
        fill(f)
    with open(p(name), 'r+b') as fh:
        text = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .'
        fh.write(text.ljust(116, b' ') + b'\0' * 8 + b'\x00\x02IM')
def v73_raw(f):
    m = f.create_dataset('m', shape=(10, 4), dtype='f8', external=[(fifo, 0, h5py.h5f.UNLIMITED)])
    m.attrs['MATLAB_class'] = np.bytes_('double')
def v73_link(f):
    f['m'] = h5py.ExternalLink(fifo, '/m')
v73('v73_ext_raw.mat', v73_raw)
v73('v73_ext_link.mat', v73_link)
# NetCDF-4 files as libnetcdf reads them: HDF5 with dimension scales and the
# _NCProperties mark; `tweak` makes one dataset of each hostile kind.
def nc4(name, tweak=None):
    b = np.bytes_
    with h5py.File(p(name), 'w') as f:
        f.attrs['_NCProperties'] = b('version=2,netcdf=4.9.0,hdf5=1.10.8')
        coords = {'time': (np.arange(4.0) * 3 + 1.5, 'hours since 2004-06-30 00:00:00', 'time'),
                  'latitude': (np.array([10.5, 11.5]), 'degrees_north', 'latitude'),
                  'longitude': (np.array([-100.5, -99.5, -98.5]), 'degrees_east', 'longitude')}
        for n, (v, units, std) in coords.items():
            if tweak == 'ext_coord' and n == 'latitude':
                ds = f.create_dataset(n, shape=v.shape, dtype='f8', external=[(fifo, 0, h5py.h5f.UNLIMITED)])
            else:
                ds = f.create_dataset(n, data=v)
            ds.attrs['units'] = b(units)
            ds.attrs['standard_name'] = b(std)
            ds.make_scale(n)
        shape = (4, 2, 3)
        if tweak == 'ext_data':
            ds = f.create_dataset('flux', shape=shape, dtype='f4', external=[(fifo, 0, h5py.h5f.UNLIMITED)])
        elif tweak == 'vds':
            lay = h5py.VirtualLayout(shape=shape, dtype='f4')
            lay[...] = h5py.VirtualSource(fifo, 'flux', shape=shape)
            ds = f.create_virtual_dataset('flux', lay)
        else:
            ds = f.create_dataset('flux', data=np.arange(24, dtype='f4').reshape(shape))
        ds.attrs['units'] = b('mol m-2 s-1')
        for i, n in enumerate(coords):
            ds.dims[i].attach_scale(f[n])
        if tweak == 'ext_link':
            f.create_group('extra')['away'] = h5py.ExternalLink(fifo, '/flux')
        if tweak == 'loop':
            f.create_group('extra')['up'] = f
nc4('nc4_ok.nc')
for t in ('ext_data', 'ext_coord', 'vds', 'ext_link', 'loop'):
    nc4('nc4_%s.nc' % t, t)
# A hard link from a group back up to the root, named to be walked before
# the one dataset: HDF5 allows such loops of groups.
with h5py.File(p('loop.h5'), 'w') as f:
    f.create_group('a')['up'] = f
    f['m'] = a
"#;

struct Hostile {
    env: Env,
    before: (String, String),
}

impl Hostile {
    /// A store holding the sample, and the hostile files beside it, made
    /// with h5py.
    fn new() -> Self {
        let python = python_with(&["h5py", "numpy"]);
        let env = Env::new();
        let fifo = env.path("secret.fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        run_python(
            &python,
            MAKE,
            &[env.dir.path().to_str().unwrap(), fifo.to_str().unwrap()],
        );
        env.run(&[
            "load",
            "-p",
            sample().to_str().unwrap(),
            "-m",
            STM,
            "-n",
            "s",
        ])
        .ok();
        let before = state(&env);
        Self { env, before }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.env.path(name)
    }

    /// `manage ARGS`, given at most 60 s: a run that opened the FIFO would
    /// block there.
    fn run(&self, args: &[&str]) -> Run {
        let mut child = self
            .env
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                child.kill().ok();
                panic!("{args:?} blocked: it opened the file a link points to");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        Run::from(out)
    }

    /// Load `name` (with `var_name` when given): exit 1, one line naming
    /// the file, the variable and every needle, the store unchanged.
    fn refuse(&self, name: &str, var: Option<&str>, needles: &[&str]) {
        let mut o = "timestamp=2004-06-30".to_string();
        if let Some(v) = var {
            o.push_str(&format!(";var_name={v}"));
        }
        self.refuse_as(STM, &o, name, needles);
    }

    /// Load `name` as `model` with the options `o`: refused as [`refuse`]
    /// says.
    fn refuse_as(&self, model: &str, o: &str, name: &str, needles: &[&str]) {
        let p = self.file(name);
        let r = self.run(&[
            "load",
            "-p",
            p.to_str().unwrap(),
            "-m",
            model,
            "-n",
            "s",
            "-o",
            o,
        ]);
        assert_eq!(r.code, 1, "{name}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(name), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("manage reads only the file it is given"),
            "{name}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("damaged"), "{name}: {}", r.stderr);
        for n in needles {
            assert!(r.stderr.contains(n), "{name}: '{n}' not in {}", r.stderr);
        }
        assert_eq!(state(&self.env), self.before, "{name} changed the store");
    }
}

fn state(env: &Env) -> (String, String) {
    (
        env.run(&["export", "-n", "s"]).ok().stdout,
        env.run(&["db", "-l", "collections", "-x"]).ok().stdout,
    )
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn external_raw_storage_is_refused_by_name() {
    let h = Hostile::new();
    let fifo = h.file("secret.fifo");
    let fifo = fifo.to_str().unwrap();
    h.refuse("ext_raw.h5", None, &["'m'", "external storage", fifo]);
    h.refuse("ext_raw.h5", Some("/m"), &["'m'", "external storage"]);
    h.refuse("v73_ext_raw.mat", None, &["'m'", "external storage", fifo]);
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn external_links_are_refused_by_name() {
    let h = Hostile::new();
    h.refuse("ext_link.h5", None, &["'m' is an external link"]);
    h.refuse("ext_link.h5", Some("m"), &["'m' is an external link"]);
    h.refuse("v73_ext_link.mat", None, &["'m' is an external link"]);
    // A path through a linked group, a soft link leading through one, and
    // the default variable when the first name is an external link.
    h.refuse(
        "ext_group.h5",
        Some("g/m"),
        &["through 'g', an external link"],
    );
    h.refuse("soft_to_ext.h5", Some("m"), &["through 'a_ext'"]);
    h.refuse("ext_first.h5", None, &["'a' is an external link"]);
    // The listing of what a file holds opens no link either.
    let r = h.run(&[
        "load",
        "-p",
        h.file("ext_group.h5").to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "s",
        "-o",
        "timestamp=2004-06-30;var_name=nothing",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("it holds: local"), "{}", r.stderr);
    assert_eq!(state(&h.env), h.before);
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn virtual_datasets_with_other_files_as_sources_are_refused() {
    let h = Hostile::new();
    let fifo = h.file("secret.fifo");
    let fifo = fifo.to_str().unwrap();
    for name in ["vds_other.h5", "vds_unlimited.h5", "vds_mixed.h5"] {
        h.refuse(name, Some("m"), &["'m' is a virtual dataset", fifo]);
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_virtual_dataset_of_the_same_file_loads_its_sources_values() {
    let h = Hostile::new();
    let p = h.file("vds_same.h5");
    h.run(&[
        "load",
        "-p",
        p.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "v",
        "-o",
        "timestamp=2004-06-30T00:00:00Z;var_name=m",
    ])
    .ok();
    // The source is arange(40) as 4 × 10: cell r has x = 10r, y = 10r + 1
    // and step k the value 10r + 2 + k (computed here, not read back).
    let docs = h.run(&["export", "-n", "v"]).ok().json_lines();
    assert_eq!(docs.len(), 8);
    for (k, d) in docs.iter().enumerate() {
        let want: Vec<f64> = (0..4).map(|r| (10 * r + 2 + k) as f64).collect();
        let got: Vec<f64> = d["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, want, "step {k}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn netcdf4_variables_stored_in_other_files_are_refused_by_name() {
    let mut h = Hostile::new();
    let fifo = h.file("secret.fifo");
    let fifo = fifo.to_str().unwrap();
    // The same builder's plain file loads: what is refused below is refused
    // for what it points to, not for being a file libnetcdf cannot read.
    let ok = h.file("nc4_ok.nc");
    let r = h.run(&[
        "load",
        "-p",
        ok.to_str().unwrap(),
        "-m",
        "CFGrid",
        "-n",
        "nc",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("4 documents"), "{}", r.stdout);
    h.before = state(&h.env);
    let refused = [
        (
            "nc4_ext_data.nc",
            "'flux' keeps its values outside the file",
        ),
        (
            "nc4_ext_coord.nc",
            "'latitude' keeps its values outside the file",
        ),
        (
            "nc4_vds.nc",
            "'flux' is a virtual dataset with values from another file",
        ),
        ("nc4_ext_link.nc", "'extra/away' is an external link"),
    ];
    for (name, why) in refused {
        let mut needles = vec![why];
        if !name.contains("link") {
            needles.push(fifo);
        }
        h.refuse_as("CFGrid", "var_name=flux", name, &needles);
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_hard_link_back_up_the_tree_is_walked_once() {
    let mut h = Hostile::new();
    let p = h.file("loop.h5");
    let p = p.to_str().unwrap();
    // No var_name: the walk for the first dataset passes the loop (a/up is
    // the root again) and finds m.
    let r = h.run(&[
        "load",
        "-p",
        p,
        "-m",
        STM,
        "-n",
        "l",
        "-o",
        "timestamp=2004-06-30T00:00:00Z",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("8 documents"), "{}", r.stdout);
    h.before = state(&h.env);
    // A variable the file lacks: the message lists each dataset once.
    let r = h.run(&[
        "load",
        "-p",
        p,
        "-m",
        STM,
        "-n",
        "l2",
        "-o",
        "timestamp=2004-06-30T00:00:00Z;var_name=nope",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .trim_end()
            .ends_with("is not in the file; it holds: m"),
        "{}",
        r.stderr
    );
    // libnetcdf follows groups without looking for loops: a NetCDF-4 file
    // with one is refused before libnetcdf opens it.
    let nc = h.file("nc4_loop.nc");
    let r = h.run(&[
        "load",
        "-p",
        nc.to_str().unwrap(),
        "-m",
        "CFGrid",
        "-n",
        "nl",
        "-o",
        "var_name=flux",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("nc4_loop.nc")
            && r.stderr.contains("'extra/up' is a second link to a group"),
        "{}",
        r.stderr
    );
    assert_eq!(
        state(&h.env),
        h.before,
        "the refused loads changed the store"
    );
}
