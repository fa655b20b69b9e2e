//! `manage`: loads gridded carbon-flux matrices into MongoDB or an embedded
//! store as spatio-temporal documents, compatible with the old Python
//! `manage.py` of flux-python-api and the Carbon Data Explorer that reads them.
//!
//! Data flows one way: [`source`] reads a file into a matrix, [`model`] turns
//! it into documents, [`store`] writes them; [`ingest`] runs one file through
//! them into one dataset. [`cmd`] holds one module per command of the binary;
//! [`plot`] draws the maps of `manage plot`.

pub mod cmd;
pub mod config;
pub mod doc;
pub mod error;
pub mod expand;
pub mod ingest;
pub mod interrupt;
pub mod model;
pub mod panics;
pub mod plot;
pub mod read;
pub mod source;
pub mod store;
#[cfg(feature = "synth")]
pub mod synth;
pub mod text;
pub mod time;
pub mod units;
