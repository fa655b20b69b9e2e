//! MATLAB Level 5 MAT-files (MATLAB's `-v6` and `-v7`, SciPy's and Octave's
//! v5 files), read by the project's own code, one way for every variable.
//!
//! The 116-byte header text is free text (MATLAB, SciPy and Octave each write
//! their own); only the version and endian fields at bytes 124–127 mean
//! anything. [`super::mat_structure::check`] first walks the file's
//! structure: it bounds every declared size by the bytes that hold it, and
//! lists every top-level variable with its class, so that a cell, struct,
//! char, sparse, logical or complex variable is refused by name.
//!
//! A numeric variable's values are then found by
//! [`super::mat_structure::locate`] and read a few columns at a time as a
//! load asks for them, whatever its size: by offset from the file when it
//! is stored as it is, from its zlib stream inflated as the columns are
//! asked for when it is compressed. They may be stored as any numeric MAT
//! type (MATLAB and SciPy store a double class as miUINT8 or miINT16 when
//! the values fit, an integer class in another integer type), in a small
//! data element (up to 4 bytes inside the tag), in either byte order; each
//! is widened to `f64`. A variable whose values do not fill exactly its
//! rows × columns is a damaged file, refused in one line naming it.

use std::path::Path;

use ndarray::{Array2, ShapeBuilder};

use super::mat_structure::{self, Inflating, Located, VarHeader};
use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

pub struct MatV5Matrix {
    info: MatrixInfo,
    file: std::fs::File,
    at: Located,
    /// A compressed variable's stream, inflated up to where the last read
    /// ended (columns are read in order; an earlier one starts it again).
    stream: Option<Inflating>,
    /// The bytes of the last columns read, reused.
    raw: Vec<u8>,
}

/// How a damaged variable's refusal ends.
const AGAIN: &str = "save it again from MATLAB or copy it again";

impl MatV5Matrix {
    pub fn open(path: &Path, var_name: Option<&str>) -> Result<Self> {
        let vars = mat_structure::check(path)?;
        let (index, header) = choose(path, &vars, var_name)?;
        let var = header.name.clone();
        if let Some(why) = header.refusal() {
            return Err(Error::variable(path, &var, why));
        }
        let (rows, cols) = check_shape(path, &var, &header.dims)?;
        Self::located(path, &var, index, header, rows, cols)
    }

    /// The `index`-th variable, of `rows` × `cols` values, where
    /// [`mat_structure::locate`] finds them.
    fn located(
        path: &Path,
        var: &str,
        index: usize,
        header: &VarHeader,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let class = class_name(header.class).ok_or_else(|| {
            Error::variable(
                path,
                var,
                "is not numeric; a numeric matrix (double, single or integer) is needed",
            )
        })?;
        let at = mat_structure::locate(path, index, var)?;
        let values = (rows as u64).saturating_mul(cols as u64);
        if at.data_bytes != values.saturating_mul(at.size as u64) {
            return Err(Error::variable(
                path,
                var,
                format!(
                    "cannot be read: damaged MAT-file (it declares {rows} × {cols} values of {} bytes, {} bytes, but holds {} bytes of values); {AGAIN}",
                    at.size,
                    values.saturating_mul(at.size as u64),
                    at.data_bytes
                ),
            ));
        }
        let file = std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: var.to_string(),
                rows,
                cols,
                class,
            },
            file,
            at,
            stream: None,
            raw: Vec::new(),
        })
    }
}

/// The MATLAB class of a numeric class number.
pub(crate) fn class_name(class: u8) -> Option<&'static str> {
    Some(match class {
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => return None,
    })
}

/// Append the values `raw` holds, of MAT data type `storage`, as doubles.
fn decode(raw: &[u8], storage: u32, little: bool, out: &mut Vec<f64>) {
    macro_rules! each {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            out.extend(raw.chunks_exact(N).map(|c| {
                let b: [u8; N] = c.try_into().expect("N bytes");
                (if little {
                    <$t>::from_le_bytes(b)
                } else {
                    <$t>::from_be_bytes(b)
                }) as f64
            }))
        }};
    }
    match storage {
        1 => each!(i8),
        2 => each!(u8),
        3 => each!(i16),
        4 => each!(u16),
        5 => each!(i32),
        6 => each!(u32),
        7 => each!(f32),
        12 => each!(i64),
        13 => each!(u64),
        _ => each!(f64),
    }
}

/// The variable named `var_name`, else the first whose name does not start
/// with `__` (as `scipy.io.loadmat` lists them, in file order), with its
/// place in that order.
fn choose<'a>(
    path: &Path,
    vars: &'a [VarHeader],
    var_name: Option<&str>,
) -> Result<(usize, &'a VarHeader)> {
    let found = match var_name {
        Some(v) => vars.iter().enumerate().find(|(_, h)| h.name == v),
        None => vars
            .iter()
            .enumerate()
            .find(|(_, h)| !h.name.starts_with("__")),
    };
    found.ok_or_else(|| match var_name {
        None => Error::format(path, "the MAT-file holds no variable"),
        Some(v) => {
            let names: Vec<&str> = vars.iter().map(|h| h.name.as_str()).collect();
            Error::variable(
                path,
                v,
                format!(
                    "is not in the file; it holds: {}",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        }
    })
}

impl Matrix for MatV5Matrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        let info = &self.info;
        let (rows, size) = (info.rows, self.at.size);
        let column = (rows * size) as u64;
        let to = self.at.data_at + start as u64 * column;
        self.raw.resize(count * rows * size, 0);
        let read = match self.at.compressed {
            None => {
                use std::os::unix::fs::FileExt;
                self.file.read_exact_at(&mut self.raw, to)
            }
            Some((at, len)) => {
                if self.stream.as_ref().is_none_or(|s| s.at > to) {
                    let file = self.file.try_clone().map_err(|e| Error::Io {
                        path: info.path.clone(),
                        source: e,
                    })?;
                    self.stream = Some(Inflating::new(file, at, len));
                }
                let stream = self.stream.as_mut().expect("opened above");
                stream.read_at(to, &mut self.raw)
            }
        };
        read.map_err(|e| {
            Error::variable(
                &info.path,
                &info.var_name,
                format!(
                    "cannot be read: damaged MAT-file (columns {}..{}: {e}); {AGAIN}",
                    start + 1,
                    start + count,
                ),
            )
        })?;
        let mut out = super::blocks::buffer(rows * count);
        decode(&self.raw, self.at.storage, self.at.little, &mut out);
        Array2::from_shape_vec((rows, count).f(), out).map_err(|e| {
            Error::variable(&info.path, &info.var_name, format!("cannot be read: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Matrix;

    /// A MAT v5 matrix element as MATLAB lays it out, built here by hand:
    /// class `class` (6 double, 7 single, 8 int8, …), its values stored as
    /// MAT type `storage` (in a small element when they take at most 4
    /// bytes and `small` is set), in the byte order `little` says.
    struct Element<'a> {
        name: &'a [u8],
        class: u32,
        flags: u32,
        dims: &'a [u32],
        storage: u32,
        values: &'a [f64],
        small: bool,
        little: bool,
    }

    impl Element<'_> {
        fn word(&self, w: u32) -> [u8; 4] {
            if self.little {
                w.to_le_bytes()
            } else {
                w.to_be_bytes()
            }
        }

        fn tag(&self, b: &mut Vec<u8>, kind: u32, bytes: u32) {
            b.extend_from_slice(&self.word(kind));
            b.extend_from_slice(&self.word(bytes));
        }

        /// One value as MAT type `storage`.
        fn stored(&self, v: f64) -> Vec<u8> {
            macro_rules! as_ {
                ($t:ty) => {
                    if self.little {
                        (v as $t).to_le_bytes().to_vec()
                    } else {
                        (v as $t).to_be_bytes().to_vec()
                    }
                };
            }
            match self.storage {
                1 => as_!(i8),
                2 => as_!(u8),
                3 => as_!(i16),
                4 => as_!(u16),
                5 => as_!(i32),
                6 => as_!(u32),
                7 => as_!(f32),
                9 => as_!(f64),
                12 => as_!(i64),
                13 => as_!(u64),
                // Any other type: one byte a value.
                _ => vec![v as u8],
            }
        }

        fn bytes(&self) -> Vec<u8> {
            let mut body = vec![];
            self.tag(&mut body, 6, 8); // array flags (miUINT32)
            body.extend_from_slice(&self.word(self.class | self.flags));
            body.extend_from_slice(&self.word(0));
            self.tag(&mut body, 5, 4 * self.dims.len() as u32); // miINT32
            for &d in self.dims {
                body.extend_from_slice(&self.word(d));
            }
            body.resize(body.len().div_ceil(8) * 8, 0);
            self.tag(&mut body, 1, self.name.len() as u32); // miINT8
            body.extend_from_slice(self.name);
            body.resize(body.len().div_ceil(8) * 8, 0);
            let data: Vec<u8> = self.values.iter().flat_map(|&v| self.stored(v)).collect();
            if self.small && data.len() <= 4 {
                // The byte count in the upper half of the first word, the
                // data in the second.
                body.extend_from_slice(&self.word((data.len() as u32) << 16 | self.storage));
                let mut four = data.clone();
                four.resize(4, 0);
                body.extend_from_slice(&four);
            } else {
                self.tag(&mut body, self.storage, data.len() as u32);
                body.extend_from_slice(&data);
                body.resize(body.len().div_ceil(8) * 8, 0);
            }
            let mut e = vec![];
            self.tag(&mut e, 14, body.len() as u32);
            e.extend_from_slice(&body);
            e
        }

        /// The element inside a top-level compressed element.
        fn compressed(&self) -> Vec<u8> {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&self.bytes()).unwrap();
            let z = z.finish().unwrap();
            let mut e = vec![];
            self.tag(&mut e, 15, z.len() as u32);
            e.extend_from_slice(&z);
            e
        }
    }

    /// A MAT v5 file of `elements`, 'IM' (little-endian) or 'MI'.
    fn mat_file_in(little: bool, elements: &[Vec<u8>]) -> Vec<u8> {
        let mut f = b"MATLAB 5.0 MAT-file, written by a test".to_vec();
        f.resize(124, b' ');
        f.extend_from_slice(if little {
            &[0, 1, b'I', b'M']
        } else {
            &[1, 0, b'M', b'I']
        });
        for e in elements {
            f.extend_from_slice(e);
        }
        f
    }

    fn mat_file(elements: &[Vec<u8>]) -> Vec<u8> {
        mat_file_in(true, elements)
    }

    /// A little-endian MAT v5 matrix element: a `rows × cols` double array
    /// named `name`, values `0, 1, 2, …` in column-major order.
    fn matrix_element(name: &[u8], rows: u32, cols: u32) -> Vec<u8> {
        let values: Vec<f64> = (0..rows * cols).map(f64::from).collect();
        Element {
            name,
            class: 6,
            flags: 0,
            dims: &[rows, cols],
            storage: 9,
            values: &values,
            small: false,
            little: true,
        }
        .bytes()
    }

    /// Every column of `m`, read `step` columns at a time.
    fn all_columns(m: &mut MatV5Matrix, step: usize) -> Vec<f64> {
        let cols = m.info().cols;
        let mut out = vec![];
        let mut start = 0;
        while start < cols {
            let n = step.min(cols - start);
            let block = m.read_columns(start, n).unwrap();
            // Column-major, as the file holds them.
            out.extend(block.t().iter().copied());
            start += n;
        }
        out
    }

    /// The variable `var` of the file at `path`, opened as `open` does but
    /// without the shape check (for 1 × 1 and 1 × 2 variables, which a load
    /// refuses as vectors).
    fn any_shape(path: &Path, var: &str) -> Result<MatV5Matrix> {
        let vars = mat_structure::check(path)?;
        let (index, header) = choose(path, &vars, Some(var))?;
        if let Some(why) = header.refusal() {
            return Err(Error::variable(path, var, why));
        }
        let (rows, cols) = (header.dims[0], header.dims[1]);
        MatV5Matrix::located(path, var, index, header, rows, cols)
    }

    /// Variables written by `matrw` (the project's writer), uncompressed
    /// and compressed, read back a few columns at a time in any order: the
    /// values written, bit for bit, widened to doubles.
    #[test]
    fn columns_are_the_values_written() {
        use matrw::{MatVariable, MatlabType, NumericArray};
        let dir = tempfile::tempdir().unwrap();
        let (rows, cols) = (37usize, 11usize);
        let doubles: Vec<f64> = (0..rows * cols)
            .map(|i| {
                if i % 13 == 0 {
                    f64::NAN
                } else {
                    (i as f64 * 0.37).sin() * 1e-6
                }
            })
            .collect();
        let singles: Vec<f32> = doubles.iter().map(|&v| v as f32).collect();
        let int16s: Vec<i16> = (0..rows * cols).map(|i| i as i16 - 200).collect();
        let uint8s: Vec<u8> = (0..rows * cols).map(|i| (i % 251) as u8).collect();
        let variables = [
            ("double", MatlabType::F64(doubles.clone()), doubles.clone()),
            (
                "single",
                MatlabType::F32(singles.clone()),
                singles.iter().map(|&v| f64::from(v)).collect(),
            ),
            (
                "int16",
                MatlabType::I16(int16s.clone()),
                int16s.iter().map(|&v| f64::from(v)).collect(),
            ),
            (
                "uint8",
                MatlabType::U8(uint8s.clone()),
                uint8s.iter().map(|&v| f64::from(v)).collect(),
            ),
        ];
        for (class, values, want) in variables {
            for compress in [false, true] {
                let path = dir.path().join(format!("{class}_{compress}.mat"));
                let var = MatVariable::NumericArray(
                    NumericArray::new(vec![rows, cols], values.clone(), None).unwrap(),
                );
                let mut file = matrw::MatFile::new();
                let small = NumericArray::new(vec![1, 2], MatlabType::F64(vec![1.0, 2.0]), None);
                file.insert("before", MatVariable::NumericArray(small.unwrap()));
                file.insert("m", var);
                matrw::save_matfile_v7(path.to_str().unwrap(), file, compress).unwrap();
                let mut m = MatV5Matrix::open(&path, Some("m")).unwrap();
                assert_eq!(m.info().class, class);
                assert_eq!((m.info().rows, m.info().cols), (rows, cols));
                for (start, count) in [(0, 2), (2, 4), (6, 5), (1, 3), (0, 11)] {
                    let got = m.read_columns(start, count).unwrap();
                    assert_eq!(got.dim(), (rows, count));
                    for c in 0..count {
                        for r in 0..rows {
                            assert_eq!(
                                got[[r, c]].to_bits(),
                                want[(start + c) * rows + r].to_bits(),
                                "{class} {compress} {start}+{count} [{r},{c}]"
                            );
                        }
                    }
                }
                let mut before = any_shape(&path, "before").unwrap();
                assert_eq!(
                    all_columns(&mut before, 1),
                    [1.0, 2.0],
                    "{class} {compress}"
                );
            }
        }
    }

    /// Values stored as another numeric type than their class (a double
    /// class as miUINT8 or miINT16, as MATLAB saves it when the values fit;
    /// an integer class in another integer type), in a small data element
    /// or a full one, in both byte orders, compressed or not: each reads as
    /// the values written.
    #[test]
    fn any_storage_type_small_elements_and_both_byte_orders() {
        let dir = tempfile::tempdir().unwrap();
        let ramp = |n: usize, f: fn(usize) -> f64| (0..n).map(f).collect::<Vec<f64>>();
        // (variable, class, storage, dims, values)
        type Case = (&'static str, u32, u32, Vec<u32>, Vec<f64>);
        let cases: Vec<Case> = vec![
            ("d_as_u8", 6, 2, vec![3, 4], ramp(12, |i| (i * 20) as f64)),
            (
                "d_as_i16",
                6,
                3,
                vec![5, 7],
                ramp(35, |i| i as f64 * 900.0 - 15000.0),
            ),
            (
                "d_as_u16",
                6,
                4,
                vec![2, 3],
                ramp(6, |i| (i * 10000) as f64),
            ),
            ("d_as_i32", 6, 5, vec![3, 3], ramp(9, |i| i as f64 * -1e8)),
            ("d_as_i8", 6, 1, vec![2, 2], vec![-128.0, -1.0, 0.0, 127.0]),
            (
                "i32_as_i16",
                12,
                3,
                vec![4, 3],
                ramp(12, |i| i as f64 - 6.0),
            ),
            (
                "u32_as_u8",
                13,
                2,
                vec![2, 5],
                ramp(10, |i| (i * 25) as f64),
            ),
            (
                "i64_as_i64",
                14,
                12,
                vec![2, 3],
                ramp(6, |i| (i as f64 - 3.0) * 1e12),
            ),
            (
                "u64_as_u64",
                15,
                13,
                vec![3, 2],
                ramp(6, |i| i as f64 * 1e15),
            ),
            (
                "u16_as_u16",
                11,
                4,
                vec![2, 3],
                ramp(6, |i| (i * 11000) as f64),
            ),
            (
                "s_as_s",
                7,
                7,
                vec![3, 2],
                ramp(6, |i| i as f64 * 0.25 - 1.0),
            ),
            // Small data elements: 4 bytes at most.
            ("u8_2x2", 9, 2, vec![2, 2], vec![0.0, 1.0, 200.0, 255.0]),
            ("i8_2x2", 8, 1, vec![2, 2], vec![-5.0, 5.0, -128.0, 127.0]),
            ("d_2x2_u8", 6, 2, vec![2, 2], vec![7.0, 8.0, 9.0, 10.0]),
            ("s_1x1", 7, 7, vec![1, 1], vec![-2.5]),
            ("i16_1x2", 10, 3, vec![1, 2], vec![-300.0, 301.0]),
            ("d_1x3_u8", 6, 2, vec![1, 3], vec![1.0, 2.0, 3.0]),
        ];
        for little in [true, false] {
            for compress in [false, true] {
                for small in [true, false] {
                    let elements: Vec<Vec<u8>> = cases
                        .iter()
                        .map(|(name, class, storage, dims, values)| {
                            let e = Element {
                                name: name.as_bytes(),
                                class: *class,
                                flags: 0,
                                dims,
                                storage: *storage,
                                values,
                                small,
                                little,
                            };
                            if compress {
                                e.compressed()
                            } else {
                                e.bytes()
                            }
                        })
                        .collect();
                    let how = format!("little {little} compressed {compress} small {small}");
                    let path = dir.path().join("v.mat");
                    std::fs::write(&path, mat_file_in(little, &elements)).unwrap();
                    for (name, class, _, dims, values) in &cases {
                        let mut m = any_shape(&path, name).unwrap_or_else(|e| panic!("{how}: {e}"));
                        assert_eq!(
                            m.info().class,
                            class_name(*class as u8).unwrap(),
                            "{name} {how}"
                        );
                        assert_eq!(m.info().rows, dims[0] as usize, "{name} {how}");
                        for step in [1, 2, 3] {
                            assert_eq!(&all_columns(&mut m, step), values, "{name} {how}");
                        }
                        if dims.iter().all(|&d| d > 1) {
                            let mut m = MatV5Matrix::open(&path, Some(name)).unwrap();
                            assert_eq!(&all_columns(&mut m, 2), values, "{name} {how}");
                        }
                    }
                }
            }
        }
    }

    /// Values that do not fill exactly rows × columns, values of a type
    /// that is not a number, values running past their variable: a damaged
    /// file, in one line naming the file and the variable. A complex
    /// variable is still refused by the structure walk, by name.
    #[test]
    fn values_that_do_not_fit_the_shape_are_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mat");
        let base = |name: &'static [u8], storage: u32, values: &'static [f64]| Element {
            name,
            class: 6,
            flags: 0,
            dims: &[2, 3],
            storage,
            values,
            small: false,
            little: true,
        };
        let five = &[1.0, 2.0, 3.0, 4.0, 5.0];
        let seven = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let six = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        for (what, e, needle) in [
            ("short", base(b"short", 9, five), "holds 40 bytes"),
            ("long", base(b"long", 9, seven), "holds 56 bytes"),
            ("text", base(b"text", 16, six), "MAT data type 16"),
            ("short_u8", base(b"short_u8", 2, five), "holds 5 bytes"),
        ] {
            for compress in [false, true] {
                let bytes = if compress { e.compressed() } else { e.bytes() };
                std::fs::write(&path, mat_file(&[bytes])).unwrap();
                let msg = match MatV5Matrix::open(&path, None) {
                    Ok(_) => panic!("{what} {compress}: opened"),
                    Err(e) => e.to_string(),
                };
                assert!(
                    msg.contains("bad.mat")
                        && msg.contains(&format!("variable '{what}'"))
                        && msg.contains("damaged MAT-file")
                        && msg.contains(needle),
                    "{what} {compress}: {msg}"
                );
                assert_eq!(msg.lines().count(), 1, "{msg}");
            }
        }
        // A value element declaring more bytes than its variable holds:
        // the walk refuses the file before any value is located.
        let mut over = base(b"over", 9, six).bytes();
        let at = over.len() - 6 * 8 - 4;
        over[at..at + 4].copy_from_slice(&(6u32 * 8 + 8).to_le_bytes());
        std::fs::write(&path, mat_file(&[over])).unwrap();
        let msg = MatV5Matrix::open(&path, None).err().unwrap().to_string();
        assert!(msg.contains("damaged MAT-file"), "{msg}");
        // Complex: the flag is enough; the walk names it.
        let complex = Element {
            flags: 0x0800,
            ..base(b"c", 9, six)
        };
        std::fs::write(&path, mat_file(&[complex.bytes()])).unwrap();
        let msg = MatV5Matrix::open(&path, None).err().unwrap().to_string();
        assert!(msg.contains("variable 'c' is complex"), "{msg}");
    }

    /// An empty matrix is located (no values) and refused as empty.
    #[test]
    fn an_empty_matrix_is_located_and_refused_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.mat");
        for dims in [[0u32, 3], [3, 0], [0, 0]] {
            let e = Element {
                name: b"e",
                class: 6,
                flags: 0,
                dims: &dims,
                storage: 9,
                values: &[],
                small: false,
                little: true,
            };
            for bytes in [e.bytes(), e.compressed()] {
                std::fs::write(&path, mat_file(&[bytes])).unwrap();
                let at = mat_structure::locate(&path, 0, "e").unwrap();
                assert_eq!(at.data_bytes, 0);
                let msg = MatV5Matrix::open(&path, None).err().unwrap().to_string();
                assert!(msg.contains("variable 'e' is empty"), "{dims:?}: {msg}");
                let m = any_shape(&path, "e").unwrap();
                assert_eq!(
                    (m.info().rows, m.info().cols),
                    (dims[0] as usize, dims[1] as usize)
                );
            }
        }
    }

    /// An element of a type MAT v5 does not define, beside the variable:
    /// the structure walk and `locate` skip it. (Found by fuzzing, when a
    /// parser was given the whole file: it took the element for a variable
    /// whose name declared 2 GiB, and allocated it.)
    #[test]
    fn an_unknown_element_beside_the_variable_is_skipped() {
        let good = matrix_element(b"flux", 2, 3);
        let mut odd = matrix_element(b"x", 1, 1);
        odd[..4].copy_from_slice(&0xE504u32.to_le_bytes());
        // The odd element's name tag declares 0x80000000 bytes.
        odd[8 + 32 + 4..8 + 32 + 8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        for (name, elements) in [
            ("after.mat", [good.clone(), odd.clone()]),
            ("before.mat", [odd, good]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, mat_file(&elements)).unwrap();
            let mut m = MatV5Matrix::open(&path, Some("flux")).unwrap();
            assert_eq!((m.info().rows, m.info().cols), (2, 3), "{name}");
            let got = m.read_columns(0, 3).unwrap();
            // Column-major 0..6: row r, column c holds 2c + r.
            for r in 0..2 {
                for c in 0..3 {
                    assert_eq!(got[[r, c]], (2 * c + r) as f64, "{name} [{r},{c}]");
                }
            }
        }
    }
}
