//! A walk over the structure of a MATLAB v5 MAT-file that checks every
//! declared size before anything is allocated for it, and the place of a
//! variable's values, which `matv5` reads from there.
//!
//! A MAT v5 file is a sequence of tagged data elements (type and byte
//! count), some of them zlib-compressed, and a matrix element holds further
//! tagged elements (flags, dimensions, name, data, or nested matrices for
//! cells and structs). A damaged or hostile file can declare gigabytes in a
//! few bytes. This walk streams through the file (inflating compressed
//! elements on the fly, keeping nothing) and refuses any element larger
//! than what contains it, and any array with more elements than its bytes
//! could hold.
//!
//! The walk also records each top-level variable's name, class and shape,
//! so that a cell, struct, char, sparse, logical or complex variable is
//! named and refused from this record. [`locate`] then finds where a
//! numeric variable's values are (a file offset, or an offset into its
//! inflated stream), whatever numeric type they are stored as, in a full
//! or a small data element, in either byte order.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::ZlibDecoder;

use crate::error::{Error, Result};

const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_INT8: u32 = 1;
const MX_SPARSE_CLASS: u8 = 5;
/// Array flag bits (in the first word of the flags sub-element).
const FLAG_COMPLEX: u32 = 0x0800;
const FLAG_LOGICAL: u32 = 0x0200;

/// A top-level variable as its headers declare it.
#[derive(Debug, Clone)]
pub struct VarHeader {
    pub name: String,
    /// The MATLAB class number (`mxDOUBLE_CLASS` = 6, …).
    pub class: u8,
    pub complex: bool,
    pub logical: bool,
    pub dims: Vec<usize>,
}

impl VarHeader {
    /// Why this variable is not a numeric matrix, in a user's words, or
    /// `None` when it is one (its shape is checked elsewhere).
    pub fn refusal(&self) -> Option<String> {
        let what = match self.class {
            1 => "a cell array",
            2 => "a struct",
            3 => "an object",
            4 => "a char array (text)",
            5 => "a sparse matrix",
            6..=15 if self.logical => "logical",
            6..=15 if self.complex => "complex",
            6..=15 => return None,
            16 => "a function handle",
            _ => "of a MATLAB class manage cannot read (an object?)",
        };
        Some(format!(
            "is {what}; a numeric matrix (double, single or integer) is needed"
        ))
    }
}
/// Longest array name accepted (MATLAB's limit is 63 characters).
const MAX_NAME_BYTES: u64 = 256;
/// Nesting of cells and structs deeper than this is refused (MATLAB files
/// nest a few levels; a loop of nesting is a way to exhaust the stack).
const MAX_DEPTH: u32 = 32;

/// Check the structure of the MAT v5 file at `path` and list its top-level
/// variables in file order.
pub fn check(path: &Path) -> Result<Vec<VarHeader>> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut header = [0u8; 128];
    r.read_exact(&mut header).map_err(|_| {
        Error::format(
            path,
            "truncated MAT-file: the 128-byte header is incomplete",
        )
    })?;
    let walker = Walker {
        little: &header[126..128] == b"IM",
        vars: RefCell::new(Vec::new()),
    };
    walker
        .sequence(&mut r, Some(len - 128), 0, true)
        .map(|()| walker.vars.into_inner())
        .map_err(|e| match e {
            Fault::Io(e) => io(e),
            Fault::Bad(msg) => Error::format(
                path,
                format!("damaged MAT-file: {msg}; save it again from MATLAB or copy it again"),
            ),
        })
}

enum Fault {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Fault::Bad("it ends inside a variable (truncated)".into())
        } else if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::InvalidData
        {
            Fault::Bad(format!("a compressed variable is corrupt ({e})"))
        } else {
            Fault::Io(e)
        }
    }
}

type Walk<T> = std::result::Result<T, Fault>;

struct Walker {
    little: bool,
    vars: RefCell<Vec<VarHeader>>,
}

/// An element tag: type, byte count, and for a small element (data in the
/// tag itself) its up to 4 bytes.
struct Tag {
    kind: u32,
    bytes: u64,
    small: Option<[u8; 4]>,
}

impl Walker {
    fn word(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    }

    /// Read a tag; `None` at a clean end of the stream.
    fn tag(&self, r: &mut dyn Read) -> Walk<Option<Tag>> {
        let mut t = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match r.read(&mut t[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(Fault::Bad("it ends inside an element tag".into())),
                n => got += n,
            }
        }
        let first = self.word(&t[..4]);
        // Small data element: byte count in the upper half of the first word,
        // up to 4 bytes of data in the tag itself.
        if first >> 16 != 0 {
            if first >> 16 > 4 {
                return Err(Fault::Bad(format!(
                    "an element tag claims {} bytes in a 4-byte small element",
                    first >> 16
                )));
            }
            return Ok(Some(Tag {
                kind: first & 0xffff,
                bytes: u64::from(first >> 16),
                small: Some([t[4], t[5], t[6], t[7]]),
            }));
        }
        Ok(Some(Tag {
            kind: first,
            bytes: u64::from(self.word(&t[4..])),
            small: None,
        }))
    }

    /// A sequence of elements: `limit` bytes of it, or up to the end of the
    /// stream when the length is not known (inside a compressed element).
    fn sequence(&self, r: &mut dyn Read, limit: Option<u64>, depth: u32, top: bool) -> Walk<()> {
        let mut left = limit;
        loop {
            if left.is_some_and(|l| l < 8) {
                return skip(r, left.unwrap_or(0));
            }
            let Some(Tag { kind, bytes, small }) = self.tag(r)? else {
                return match left {
                    Some(0) | None => Ok(()),
                    Some(l) => Err(Fault::Bad(format!("it ends {l} bytes early"))),
                };
            };
            left = left.map(|l| l - 8);
            if small.is_some() {
                continue;
            }
            // Top-level compressed elements are not padded; all others are
            // padded to 8 bytes.
            let padded = if top && kind == MI_COMPRESSED {
                bytes
            } else {
                bytes.div_ceil(8) * 8
            };
            if let Some(l) = left {
                if bytes > l {
                    return Err(Fault::Bad(format!(
                        "truncated or damaged: an element declares {bytes} bytes where only {l} remain"
                    )));
                }
            }
            let mut body = r.take(bytes);
            match kind {
                MI_MATRIX => self.matrix(&mut body, bytes, depth + 1)?,
                MI_COMPRESSED if top => {
                    // A compressed element holds one element; only the bytes
                    // that element declares are inflated, whatever else the
                    // stream holds (gigabytes of zeros cost nothing).
                    let mut inflated = ZlibDecoder::new(&mut body);
                    if let Some((tag, declared)) = self.inner_tag(&mut inflated)? {
                        let mut one = io::Cursor::new(tag).chain((&mut inflated).take(declared));
                        self.sequence(&mut one, Some(8 + declared), depth, false)?;
                    }
                    drop(inflated);
                    // The rest of the compressed bytes, not inflated.
                    skip_rest(&mut body)?;
                }
                _ => skip(&mut body, bytes)?,
            }
            if body.limit() != 0 {
                return Err(Fault::Bad("it ends inside a variable (truncated)".into()));
            }
            let pad = padded - bytes;
            let pad = left.map_or(pad, |l| pad.min(l - bytes));
            skip(r, pad)?;
            left = left.map(|l| l - bytes - pad);
        }
    }

    /// The tag that opens a compressed element's stream and the byte count
    /// it declares; `None` for an empty stream.
    fn inner_tag(&self, r: &mut dyn Read) -> Walk<Option<([u8; 8], u64)>> {
        let mut t = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match r.read(&mut t[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(Fault::Bad("it ends inside an element tag".into())),
                n => got += n,
            }
        }
        if self.word(&t[..4]) >> 16 != 0 {
            return Err(Fault::Bad(
                "a compressed variable holds a small element instead of an array".into(),
            ));
        }
        Ok(Some((t, u64::from(self.word(&t[4..])))))
    }

    /// A matrix element of `bytes` bytes: flags, dimensions, then the rest.
    fn matrix(&self, r: &mut dyn Read, bytes: u64, depth: u32) -> Walk<()> {
        if depth > MAX_DEPTH {
            return Err(Fault::Bad(format!(
                "variables nested deeper than {MAX_DEPTH} levels"
            )));
        }
        if bytes == 0 {
            return Ok(()); // an empty placeholder, e.g. an empty cell
        }
        if bytes < 24 {
            return Err(Fault::Bad("an array is too short for its header".into()));
        }
        // Array flags: a tag and two uint32, the class in the low byte of the first.
        let mut flags = [0u8; 16];
        r.read_exact(&mut flags)?;
        let class = if self.little { flags[8] } else { flags[11] };
        let flag_word = self.word(&flags[8..12]);
        // Dimensions: int32 values (a small element holds no full pair).
        let Tag {
            bytes: dim_bytes,
            small,
            ..
        } = self
            .tag(r)?
            .ok_or_else(|| Fault::Bad("an array ends before its dimensions".into()))?;
        let mut used = 24;
        let mut dims: Vec<u64> = vec![];
        if small.is_none() {
            if dim_bytes > 64 * 4 || 24 + dim_bytes > bytes {
                return Err(Fault::Bad(format!(
                    "an array declares {dim_bytes} bytes of dimensions"
                )));
            }
            let mut raw = vec![0u8; dim_bytes as usize];
            r.read_exact(&mut raw)?;
            let padded = dim_bytes.div_ceil(8) * 8;
            skip(r, padded - dim_bytes)?;
            used += padded;
            dims = raw
                .chunks_exact(4)
                .map(|c| u64::from(self.word(c)))
                .collect();
            let elements = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
            // Every element takes at least a byte (sparse arrays excepted).
            if class != MX_SPARSE_CLASS && elements > bytes {
                return Err(Fault::Bad(format!(
                    "an array declares {} elements in {bytes} bytes",
                    dims.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("×")
                )));
            }
        }
        // The name: int8 characters (MATLAB allows 63), small or not.
        let Tag {
            kind: name_kind,
            bytes: name_bytes,
            small,
        } = self
            .tag(r)?
            .ok_or_else(|| Fault::Bad("an array ends before its name".into()))?;
        used += 8;
        if name_kind != MI_INT8 || name_bytes > MAX_NAME_BYTES {
            return Err(Fault::Bad(format!(
                "an array's name is not text of at most {MAX_NAME_BYTES} characters"
            )));
        }
        let name = match small {
            Some(b) => b[..name_bytes as usize].to_vec(),
            None => {
                let padded = name_bytes.div_ceil(8) * 8;
                if used + padded > bytes {
                    return Err(Fault::Bad(
                        "an array's name is longer than the array".into(),
                    ));
                }
                let mut raw = vec![0u8; padded as usize];
                r.read_exact(&mut raw)?;
                raw.truncate(name_bytes as usize);
                used += padded;
                raw
            }
        };
        if depth == 1 {
            self.vars.borrow_mut().push(VarHeader {
                name: String::from_utf8_lossy(&name).into_owned(),
                class,
                complex: flag_word & FLAG_COMPLEX != 0,
                logical: flag_word & FLAG_LOGICAL != 0,
                dims: dims.iter().map(|&d| d as usize).collect(),
            });
        }
        let rest = bytes
            .checked_sub(used)
            .ok_or_else(|| Fault::Bad("an array's header is larger than the array".into()))?;
        self.sequence(r, Some(rest), depth, false)
    }
}

fn skip(r: &mut dyn Read, n: u64) -> Walk<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied < n {
        return Err(Fault::Bad("it ends inside a variable (truncated)".into()));
    }
    Ok(())
}

fn skip_rest(r: &mut dyn Read) -> Walk<()> {
    io::copy(r, &mut io::sink())?;
    Ok(())
}

/// Where the values of a top-level numeric variable are, for reading them
/// a few columns at a time (see [`locate`]).
#[derive(Debug, Clone)]
pub struct Located {
    /// The file offset of the zlib stream holding the variable, and its
    /// length, for a compressed variable.
    pub compressed: Option<(u64, u64)>,
    /// Where the values start: a file offset, or an offset into the
    /// inflated stream of a compressed variable. For a small data element
    /// (at most 4 bytes, kept in the tag's last 4 bytes) it points there.
    pub data_at: u64,
    /// The MAT data type the values are stored as (miDOUBLE, miUINT8, …),
    /// whatever the variable's class: MATLAB and SciPy store a double
    /// class as miUINT8 or miINT16 when its values fit.
    pub storage: u32,
    /// The bytes of one value as stored.
    pub size: usize,
    /// The bytes of values the element declares.
    pub data_bytes: u64,
    pub little: bool,
}

/// The byte size of a value of MAT data type `storage`, for the numeric
/// types a real matrix stores its values as.
pub fn storage_size(storage: u32) -> Option<usize> {
    Some(match storage {
        1 | 2 => 1,       // miINT8, miUINT8
        3 | 4 => 2,       // miINT16, miUINT16
        5..=7 => 4,       // miINT32, miUINT32, miSINGLE
        9 | 12 | 13 => 8, // miDOUBLE, miINT64, miUINT64
        _ => return None,
    })
}

/// Where the `index`-th variable [`check`] listed, named `var`, keeps its
/// real values, read from the file by offset (a compressed variable: its
/// first bytes inflated), never whole. The values are one run of a numeric
/// MAT type, in a full data element or in a small one; anything else (no
/// such element, another type, values running past the variable) is a
/// damaged file, refused in one line naming `var`.
pub fn locate(path: &Path, index: usize, var: &str) -> Result<Located> {
    use std::os::unix::fs::FileExt;
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let damaged = |why: String| {
        Error::variable(
            path,
            var,
            format!(
                "cannot be read: damaged MAT-file ({why}); save it again from MATLAB or copy it again"
            ),
        )
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut header = [0u8; 128];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| damaged("the header is incomplete".into()))?;
    let w = Walker {
        little: &header[126..128] == b"IM",
        vars: RefCell::new(Vec::new()),
    };
    let mut seen = 0usize;
    let mut pos = 128u64;
    while pos + 8 <= len {
        let mut t = [0u8; 8];
        file.read_exact_at(&mut t, pos).map_err(io)?;
        let kind = w.word(&t[..4]);
        if kind >> 16 != 0 {
            pos += 8;
            continue;
        }
        let bytes = u64::from(w.word(&t[4..]));
        let end = (pos + 8).saturating_add(bytes).min(len);
        if kind == MI_COMPRESSED {
            let region = BufReader::with_capacity(1 << 14, Region::new(&file, pos + 8, end));
            let mut z = ZlibDecoder::new(region);
            let inner = w
                .inner_tag(&mut z)
                .map_err(|_| damaged("a compressed variable is corrupt".into()))?;
            if let Some((tag, declared)) = inner {
                if w.word(&tag[..4]) == MI_MATRIX && declared > 0 {
                    if seen == index {
                        let (at, storage, size, data_bytes) =
                            data_header(&w, &mut z, declared).map_err(damaged)?;
                        return Ok(Located {
                            compressed: Some((pos + 8, end - pos - 8)),
                            data_at: 8 + at,
                            storage,
                            size,
                            data_bytes,
                            little: w.little,
                        });
                    }
                    seen += 1;
                }
            }
            pos = end;
        } else {
            let padded_end = (pos + 8).saturating_add(bytes.div_ceil(8) * 8).min(len);
            if kind == MI_MATRIX && bytes > 0 {
                if seen == index {
                    let mut r = BufReader::with_capacity(1 << 12, Region::new(&file, pos + 8, end));
                    let (at, storage, size, data_bytes) =
                        data_header(&w, &mut r, bytes).map_err(damaged)?;
                    return Ok(Located {
                        compressed: None,
                        data_at: pos + 8 + at,
                        storage,
                        size,
                        data_bytes,
                        little: w.little,
                    });
                }
                seen += 1;
            }
            pos = padded_end;
        }
    }
    Err(damaged(
        "its values are not where its structure lists them".into(),
    ))
}

/// Of a matrix element's body of `body` bytes (from its flags on): the
/// offset of its real values from the body's start, their MAT data type,
/// the size of one value and their byte count; or why they cannot be read.
fn data_header(
    w: &Walker,
    r: &mut dyn Read,
    body: u64,
) -> std::result::Result<(u64, u32, usize, u64), String> {
    // Flags: a tag and two words.
    let mut flags = [0u8; 16];
    r.read_exact(&mut flags)
        .map_err(|_| "it ends inside its header".to_string())?;
    let mut used = 16u64;
    // Dimensions, then the name: each small, or padded to 8 bytes.
    for what in ["dimensions", "name"] {
        let Tag { bytes, small, .. } = w
            .tag(r)
            .ok()
            .flatten()
            .ok_or_else(|| format!("its {what} cannot be read"))?;
        used += 8;
        if small.is_none() {
            let padded = bytes.div_ceil(8) * 8;
            if padded > 4096 {
                return Err(format!("its {what} declare {bytes} bytes"));
            }
            let skipped = io::copy(&mut r.take(padded), &mut io::sink())
                .map_err(|_| format!("its {what} cannot be read"))?;
            if skipped < padded {
                return Err(format!("it ends inside its {what}"));
            }
            used += padded;
        }
    }
    let Tag { kind, bytes, small } = w
        .tag(r)
        .ok()
        .flatten()
        .ok_or_else(|| "it holds no values".to_string())?;
    used += 8;
    let size = storage_size(kind)
        .ok_or_else(|| format!("its values are of MAT data type {kind}, not a numeric type"))?;
    // A small element keeps its up to 4 bytes in the tag's second word.
    let at = if small.is_some() { used - 4 } else { used };
    if at.saturating_add(bytes) > body {
        return Err(format!(
            "its values declare {bytes} bytes, more than the variable holds"
        ));
    }
    Ok((at, kind, size, bytes))
}

/// Bytes `start..end` of a file, read by offset.
struct Region<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl<'a> Region<'a> {
    fn new(file: &'a File, at: u64, end: u64) -> Self {
        Self { file, at, end }
    }
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = (buf.len() as u64).min(self.end.saturating_sub(self.at)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += got as u64;
        Ok(got)
    }
}

/// A file's compressed variable inflated as a stream from its start:
/// what [`crate::source::matv5`] reads columns from in order.
pub struct Inflating {
    z: ZlibDecoder<BufReader<OwnedRegion>>,
    /// Bytes of the inflated stream read so far.
    pub at: u64,
}

impl Inflating {
    pub fn new(file: File, at: u64, len: u64) -> Self {
        let region = OwnedRegion {
            file,
            at,
            end: at + len,
        };
        Self {
            z: ZlibDecoder::new(BufReader::with_capacity(1 << 16, region)),
            at: 0,
        }
    }

    /// Skip to `to` (from where the stream is), then fill `buf`.
    pub fn read_at(&mut self, to: u64, buf: &mut [u8]) -> io::Result<()> {
        if to < self.at {
            return Err(io::Error::other("the stream cannot go back"));
        }
        let skip = to - self.at;
        let skipped = io::copy(&mut (&mut self.z).take(skip), &mut io::sink())?;
        if skipped < skip {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.z.read_exact(buf)?;
        self.at = to + buf.len() as u64;
        Ok(())
    }
}

struct OwnedRegion {
    file: File,
    at: u64,
    end: u64,
}

impl Read for OwnedRegion {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Region {
            file: &self.file,
            at: self.at,
            end: self.end,
        }
        .read(buf)
        .inspect(|&n| self.at += n as u64)
    }
}
