//! The header of a NetCDF-3 file, walked before libnetcdf reads it.
//!
//! libnetcdf allocates what the header declares (a name's length, a
//! variable's number of dimensions, an attribute's number of values)
//! before it checks that the file holds that much: a fuzzed 644-byte file
//! made it ask for 16 GiB. The header is a sequence of counted lists
//! (NetCDF classic and 64-bit offset format specification, and CDF-5's);
//! every count is checked here against the bytes left in the file, as the
//! header is read, so no count can send the library past the file's end.
//! What the counts mean (dimension ids, types, offsets) is left to the
//! library.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

const DIMENSION: u32 = 0x0A;
const VARIABLE: u32 = 0x0B;
const ATTRIBUTE: u32 = 0x0C;

struct Header {
    r: BufReader<std::fs::File>,
    at: u64,
    len: u64,
    /// CDF-5 counts are 8 bytes, CDF-1 and CDF-2 ones 4.
    wide_counts: bool,
    /// CDF-2 and CDF-5 offsets are 8 bytes, CDF-1 ones 4.
    wide_offsets: bool,
    /// What the header says of where the data are, for [`Header::data_end`].
    numrecs: u64,
    dims: Vec<u64>,
    vars: Vec<Var>,
}

/// A variable as the header declares it: its dimensions' ids, the size
/// of its type, and where its data (or first record) begin.
struct Var {
    dims: Vec<u64>,
    type_size: u64,
    begin: u64,
}

/// Why the walk stopped: the file is cut short, or a count is impossible.
enum Stop {
    Io(std::io::Error),
    Damaged(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

type Walk<T> = std::result::Result<T, Stop>;

impl Header {
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.at)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Walk<[u8; N]> {
        if self.left() < N as u64 {
            return Err(Stop::Damaged(format!(
                "the header is cut short in {what} at byte {}",
                self.at
            )));
        }
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.at += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Walk<u32> {
        Ok(u32::from_be_bytes(self.bytes::<4>(what)?))
    }

    fn count(&mut self, what: &str) -> Walk<u64> {
        if self.wide_counts {
            Ok(u64::from_be_bytes(self.bytes::<8>(what)?))
        } else {
            Ok(u64::from(self.u32(what)?))
        }
    }

    /// Skip `n` items of `size` bytes, padded to 4, refusing a count the
    /// file cannot hold.
    fn skip(&mut self, n: u64, size: u64, what: &str) -> Walk<()> {
        let bytes = n
            .checked_mul(size)
            .and_then(|b| b.checked_add(3))
            .map(|b| b / 4 * 4)
            .filter(|&b| b <= self.left())
            .ok_or_else(|| self.too_many(n, what))?;
        self.r.seek_relative(bytes as i64)?;
        self.at += bytes;
        Ok(())
    }

    fn too_many(&self, n: u64, what: &str) -> Stop {
        Stop::Damaged(format!(
            "its header declares {n} {what} at byte {}, more than the {} bytes left in the file hold",
            self.at,
            self.left()
        ))
    }

    /// A list's tag and count; an absent list is two zeros. Each of the
    /// list's items takes at least `least` bytes.
    fn list(&mut self, tag: u32, least: u64, what: &str) -> Walk<u64> {
        let found = self.u32(what)?;
        let n = self.count(what)?;
        if found == 0 && n == 0 {
            return Ok(0);
        }
        if found != tag {
            return Err(Stop::Damaged(format!(
                "its header has tag {found:#x} where the {what} list starts, at byte {}",
                self.at
            )));
        }
        if n.checked_mul(least).is_none_or(|b| b > self.left()) {
            return Err(self.too_many(n, what));
        }
        Ok(n)
    }

    /// A name: its bytes must be in the file, and UTF-8, as the format
    /// requires (the `netcdf` crate panics on one that is not).
    fn name(&mut self) -> Walk<()> {
        let n = self.count("a name")?;
        let at = self.at;
        let padded = n.div_ceil(4) * 4;
        if n > 1 << 16 || padded > self.left() {
            return self.skip(n, 1, "bytes of a name");
        }
        let mut bytes = vec![0u8; padded as usize];
        self.r.read_exact(&mut bytes)?;
        self.at += padded;
        match std::str::from_utf8(&bytes[..n as usize]) {
            Ok(_) => Ok(()),
            Err(_) => Err(Stop::Damaged(format!(
                "its header has a name that is not UTF-8 ({}) at byte {at}",
                crate::error::shown(Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                        &bytes[..n as usize]
                    )
                ))
            ))),
        }
    }

    fn attributes(&mut self) -> Walk<()> {
        for _ in 0..self.list(ATTRIBUTE, 12, "attributes")? {
            self.name()?;
            let kind = self.u32("an attribute's type")?;
            let size = match kind {
                1 | 2 | 7 => 1,
                3 | 8 => 2,
                4 | 5 | 9 => 4,
                6 | 10 | 11 => 8,
                other => {
                    return Err(Stop::Damaged(format!(
                        "its header gives an attribute type {other}, which is not a NetCDF type, at byte {}",
                        self.at - 4
                    )))
                }
            };
            let n = self.count("an attribute's length")?;
            self.skip(n, size, "values of an attribute")?;
        }
        Ok(())
    }

    fn walk(&mut self) -> Walk<()> {
        self.numrecs = self.count("the number of records")?;
        for _ in 0..self.list(DIMENSION, 8, "dimensions")? {
            self.name()?;
            let len = self.count("a dimension's length")?;
            self.dims.push(len);
        }
        self.attributes()?;
        for _ in 0..self.list(VARIABLE, 16, "variables")? {
            self.name()?;
            let ndims = self.count("a variable's number of dimensions")?;
            let id = if self.wide_counts { 8 } else { 4 };
            let mut dims = Vec::new();
            if ndims <= 1024 {
                for _ in 0..ndims {
                    dims.push(self.count("a dimension id of a variable")?);
                }
            } else {
                self.skip(ndims, id, "dimensions of a variable")?;
            }
            self.attributes()?;
            // libnetcdf divides by the size of a variable's type, which is
            // 0 for a type the format does not have (NC_STRING, 12, is
            // NetCDF-4's): a process stopped on SIGFPE.
            let kind = self.u32("a variable's type")?;
            let last = if self.wide_counts { 11 } else { 6 };
            if !(1..=last).contains(&kind) {
                return Err(Stop::Damaged(format!(
                    "its header gives a variable type {kind}, which this NetCDF-3 format does not have, at byte {}",
                    self.at - 4
                )));
            }
            self.count("a variable's size")?;
            let begin = if self.wide_offsets {
                u64::from_be_bytes(self.bytes::<8>("a variable's offset")?)
            } else {
                u64::from(u32::from_be_bytes(self.bytes::<4>("a variable's offset")?))
            };
            let type_size = match kind {
                1 | 2 | 7 => 1,
                3 | 8 => 2,
                4 | 5 | 9 => 4,
                _ => 8,
            };
            self.vars.push(Var {
                dims,
                type_size,
                begin,
            });
        }
        Ok(())
    }

    /// Where the last byte of data the header declares ends: each fixed
    /// variable's values from its offset; each record variable's last
    /// record, the records being as many as the header counts. `None`
    /// when it cannot be told (an unknown dimension id, a count still
    /// being streamed, sizes beyond u64): the library's own checks stand.
    fn data_end(&self) -> Option<u64> {
        let len_of = |d: u64| self.dims.get(usize::try_from(d).ok()?).copied();
        let is_record = |v: &Var| v.dims.first().and_then(|&d| len_of(d)) == Some(0);
        // One value of a record variable (or the whole of a fixed one).
        let size = |v: &Var, from: usize| -> Option<u64> {
            v.dims[from.min(v.dims.len())..]
                .iter()
                .try_fold(v.type_size, |a, &d| a.checked_mul(len_of(d)?))
        };
        let records: Vec<&Var> = self.vars.iter().filter(|v| is_record(v)).collect();
        // A record holds each record variable's slab padded to 4 bytes,
        // unless there is only one record variable.
        let recsize = records.iter().try_fold(0u64, |a, v| {
            let s = size(v, 1)?;
            let s = if records.len() == 1 {
                s
            } else {
                s.checked_add(3)? / 4 * 4
            };
            a.checked_add(s)
        })?;
        let streaming = if self.wide_counts {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let mut end = 0u64;
        for v in &self.vars {
            let e = if is_record(v) {
                if self.numrecs == streaming {
                    return None;
                }
                if self.numrecs == 0 {
                    continue;
                }
                (self.numrecs - 1)
                    .checked_mul(recsize)?
                    .checked_add(size(v, 1)?)?
                    .checked_add(v.begin)?
            } else {
                size(v, 0)?.checked_add(v.begin)?
            };
            end = end.max(e);
        }
        Some(end)
    }
}

/// Refuse a NetCDF-3 file whose header declares more than the file holds.
/// `version` is the byte after the `CDF` magic (1, 2 or 5).
pub fn check(path: &Path, version: u8) -> Result<()> {
    let io = |e: std::io::Error| Error::format(path, format!("cannot be read: {e}"));
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(64 << 10, f);
    r.seek(SeekFrom::Start(4)).map_err(io)?;
    let mut h = Header {
        r,
        at: 4,
        len,
        wide_counts: version == 5,
        wide_offsets: version != 1,
        numrecs: 0,
        dims: Vec::new(),
        vars: Vec::new(),
    };
    match h.walk() {
        // libnetcdf reads what is missing at the end of a file as zeros:
        // a file cut short (a partial download) would load with zeros.
        Ok(()) => match h.data_end() {
            Some(end) if end > len => Err(Error::format(
                path,
                format!(
                    "is a truncated NetCDF-3 file: its header declares data up to byte {end}, but the file has {len} bytes"
                ),
            )),
            _ => Ok(()),
        },
        Err(Stop::Io(e)) => Err(io(e)),
        Err(Stop::Damaged(why)) => Err(Error::format(
            path,
            format!("is a damaged NetCDF-3 file: {why}"),
        )),
    }
}
