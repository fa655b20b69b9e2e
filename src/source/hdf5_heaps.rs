//! Global heap collections checked before libhdf5 reads a file.
//!
//! Variable-length data (strings, and the dimension lists NetCDF-4 keeps
//! as variable-length references) lives in *global heap collections*: a
//! `GCOL` header, the collection's size, then objects of a 16-byte header
//! (index, reference count, size) and their data padded to 8 bytes (HDF5
//! File Format Specification, section III.E). libhdf5 1.10 walks a
//! collection by stepping over each object's header and data, and never
//! checks that the step is longer than zero: a collection whose free-space
//! object (index 0) declares 0 bytes makes it loop forever on the first
//! attribute read (found by fuzzing a NetCDF-4 file). Steps that run past
//! the collection's end make it read outside it.
//!
//! So every `GCOL` in the file is walked first, as the library would walk
//! it, and a collection it could not walk to its end is refused. The scan
//! reads the file once, a block at a time, by offset.

use std::path::Path;

use crate::error::{Error, Result};

const SIGNATURE: &[u8] = super::scan::HEAP_SIGNATURE;
const BLOCK: usize = 8 << 20;

/// Refuse a file holding a global heap collection libhdf5 cannot walk.
/// `base` is where the HDF5 superblock starts (0, or 512 after a MATLAB
/// header).
pub fn check(path: &Path, base: u64) -> Result<()> {
    let io = |e: std::io::Error| Error::format(path, format!("cannot be read: {e}"));
    let f = std::fs::File::open(path).map_err(io)?;
    let Some(lengths) = size_of_lengths(&f, base).map_err(io)? else {
        // A superblock this check does not know: the library judges it.
        return Ok(());
    };
    let file_len = f.metadata().map_err(io)?.len();
    if let Some(why) = driver_info(&f, base, file_len).map_err(io)? {
        return Err(Error::format(
            path,
            format!("has a damaged superblock: {why}"),
        ));
    }
    // The signatures found by the load's one pass over the file, if it
    // shares one (see `scan`).
    if let Some(pass) = super::scan::shared(path) {
        for &offset in &pass.heaps {
            if let Some(why) = walk(&f, offset, lengths, file_len).map_err(io)? {
                return Err(damaged_heap(path, offset, &why));
            }
        }
        return Ok(());
    }
    let finder = memchr::memmem::Finder::new(SIGNATURE);
    let mut block = vec![0u8; BLOCK + SIGNATURE.len() - 1];
    // Bytes of the previous block kept at the start of this one, so that a
    // signature across two blocks is found.
    let (mut kept, mut at) = (0usize, 0u64);
    loop {
        let n = read_at(&f, &mut block[kept..], at).map_err(io)?;
        let filled = kept + n;
        let start = at - kept as u64;
        for hit in finder.find_iter(&block[..filled]) {
            let offset = start + hit as u64;
            if let Some(why) = walk(&f, offset, lengths, file_len).map_err(io)? {
                return Err(damaged_heap(path, offset, &why));
            }
        }
        if n == 0 {
            return Ok(());
        }
        at += n as u64;
        kept = (SIGNATURE.len() - 1).min(filled);
        block.copy_within(filled - kept..filled, 0);
    }
}

fn damaged_heap(path: &Path, offset: u64, why: &str) -> Error {
    Error::format(
        path,
        format!("has a damaged global heap (variable-length data) at byte {offset}: {why}"),
    )
}

/// The superblock's "size of lengths" (bytes), if the superblock at `base`
/// is one of the versions this check knows (0 to 3).
fn size_of_lengths(f: &std::fs::File, base: u64) -> std::io::Result<Option<usize>> {
    let mut head = [0u8; 16];
    if read_at(f, &mut head, base)? < head.len() {
        return Ok(None);
    }
    let size = match head[8] {
        0 | 1 => head[14],
        2 | 3 => head[10],
        _ => return Ok(None),
    };
    Ok(matches!(size, 2 | 4 | 8).then_some(size as usize))
}

/// What is wrong with the driver information block a version 0 or 1
/// superblock names, if it cannot be in the file: libhdf5 1.10 allocates
/// the size its header declares (a 32-bit count of bytes, so up to 4 GiB)
/// before it reads a byte of it (found by fuzzing: 2.3 GB for a 1.8 KB
/// file). The block's address, like every address, counts from the
/// superblock (HDF5 File Format Specification, section II.A).
fn driver_info(f: &std::fs::File, base: u64, file_len: u64) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 16];
    if read_at(f, &mut head, base)? < head.len() {
        return Ok(None);
    }
    let (offsets, fixed) = match head[8] {
        0 => (head[13] as usize, 24u64),
        1 => (head[13] as usize, 28u64),
        _ => return Ok(None),
    };
    if !matches!(offsets, 2 | 4 | 8) {
        return Ok(None);
    }
    let mut field = [0u8; 8];
    let at = base + fixed + 3 * offsets as u64;
    if read_at(f, &mut field[..offsets], at)? < offsets {
        return Ok(None);
    }
    if field[..offsets].iter().all(|&b| b == 0xff) {
        return Ok(None); // no driver information block
    }
    let Some(block) = base.checked_add(le(&field[..offsets])) else {
        return Ok(Some(
            "its driver information block is past the end of the file".into(),
        ));
    };
    let mut header = [0u8; 8];
    if block.checked_add(16).is_none_or(|end| end > file_len)
        || read_at(f, &mut header, block)? < header.len()
    {
        return Ok(Some(format!(
            "its driver information block at byte {block} is past the end of the file ({file_len} bytes)"
        )));
    }
    let declared = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    if block + 16 + declared > file_len {
        return Ok(Some(format!(
            "its driver information block at byte {block} declares {declared} bytes, past the end of the file ({file_len} bytes)"
        )));
    }
    Ok(None)
}

/// Walk the collection whose signature is at `offset` as libhdf5 does, and
/// say why it cannot, if it cannot. Bytes that only look like a collection
/// (a bad version, reserved bytes set, a size past the end of the file) are
/// not one the library could be sent to, and pass. Only the objects'
/// headers are read.
fn walk(
    f: &std::fs::File,
    offset: u64,
    lengths: usize,
    file_len: u64,
) -> std::io::Result<Option<String>> {
    let header = 8 + lengths;
    let mut head = [0u8; 16];
    if read_at(f, &mut head[..header], offset)? < header || head[4] != 1 || head[5..8] != [0, 0, 0]
    {
        return Ok(None);
    }
    let size = le(&head[8..header]);
    if size < align(header as u64) || offset.checked_add(size).is_none_or(|end| end > file_len) {
        return Ok(None);
    }
    let object_header = (8 + lengths) as u64;
    let mut p = align(header as u64);
    while p < size {
        let left = size - p;
        if object_header > left {
            break; // the library takes what is left as free space
        }
        read_at(f, &mut head[..object_header as usize], offset + p)?;
        let index = u16::from_le_bytes([head[0], head[1]]);
        let declared = le(&head[8..object_header as usize]);
        let need = if index > 0 {
            align(declared).checked_add(object_header)
        } else {
            Some(declared)
        };
        match need {
            Some(0) => {
                return Ok(Some(format!(
                    "its free space (object 0, at byte {}) declares 0 bytes",
                    offset + p
                )))
            }
            Some(n) if n <= left => p += n,
            _ => {
                return Ok(Some(format!(
                    "object {index} declares {declared} bytes, more than the {left} left in the collection"
                )))
            }
        }
    }
    Ok(None)
}

fn align(n: u64) -> u64 {
    n.div_ceil(8).saturating_mul(8)
}

fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |a, &b| (a << 8) | u64::from(b))
}

fn read_at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
