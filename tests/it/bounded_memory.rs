//! Memory stays bounded by what a file declares: a compressed MAT v5
//! variable whose stream carries hundreds of megabytes of zeros after a
//! 4 × 10 matrix loads in the memory of the matrix. This binary holds one
//! test, so that the largest child's peak memory (`getrusage`) is that run's.

use crate::common;

use std::io::{Read, Write};

use common::Env;
use fluxpy::synth;
use matrw::{MatVariable, MatlabType, NumericArray};

/// Zeros appended after the matrix inside the compressed stream.
const TRAILING_ZEROS: usize = 384 << 20;

#[test]
fn trailing_bytes_of_a_compressed_variable_are_not_inflated() {
    let env = Env::new();
    let plain = env.path("plain.mat");
    // 4 cells: x, y, then 8 steps; value 10·row + column, column-major.
    let values: Vec<f64> = (0..10)
        .flat_map(|c| (0..4).map(move |r| (10 * r + c) as f64))
        .collect();
    let var = MatVariable::NumericArray(
        NumericArray::new(vec![4, 10], MatlabType::F64(values), None).unwrap(),
    );
    synth::write_mat_v5_variables(&plain, vec![("m".into(), var)], true).unwrap();
    let bytes = std::fs::read(&plain).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[128..132].try_into().unwrap()), 15);
    let n = u32::from_le_bytes(bytes[132..136].try_into().unwrap()) as usize;
    let mut element = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[136..136 + n])
        .read_to_end(&mut element)
        .unwrap();
    // The same element, followed by zeros, in one zlib stream.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&element).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..TRAILING_ZEROS >> 20 {
        z.write_all(&zeros).unwrap();
    }
    let stream = z.finish().unwrap();
    let mut padded = bytes[..128].to_vec();
    padded.extend_from_slice(&15u32.to_le_bytes());
    padded.extend_from_slice(&(stream.len() as u32).to_le_bytes());
    padded.extend_from_slice(&stream);
    let path = env.path("padded.mat");
    std::fs::write(&path, &padded).unwrap();

    env.run(&[
        "load",
        "-p",
        path.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "z",
        "-o",
        "timestamp=2004-06-30",
    ])
    .ok();
    let docs = env.run(&["export", "-n", "z"]).ok().json_lines();
    assert_eq!(docs.len(), 8);
    assert_eq!(
        docs[0]["values"],
        serde_json::json!([2.0, 12.0, 22.0, 32.0])
    );

    // SAFETY: getrusage fills the struct it is given.
    let peak_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss as usize
    };
    assert!(
        peak_kib * 1024 < TRAILING_ZEROS / 3,
        "a run took {} MiB for a 4 × 10 matrix",
        peak_kib >> 10
    );
    eprintln!("peak memory of a run: {} MiB", peak_kib >> 10);
}
