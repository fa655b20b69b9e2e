//! The end-to-end tests: one binary, one harness (`common`), one module per
//! area. Each module runs the real `manage` binary, or the library, on real
//! files; `common` says how a test gets what it needs.

mod common;

mod appends;
mod bounded_memory;
mod bounded_stats;
mod busy_store;
mod cli;
mod coarsen;
mod coastlines;
mod conformance;
mod cron;
mod csv_and_plot;
mod dry_run_pipeline;
mod flux_server;
mod foreign_data;
mod hdf5;
mod honest_errors;
mod hostile;
mod hostile_args;
mod hostile_round3;
mod killed_appends;
mod layers;
mod lean_loads;
mod locks;
mod look_select;
mod lost_digits;
mod many_hosts;
mod mat_one_path;
mod missing_values;
mod models;
mod mongodb;
mod mongodb_deployments;
mod mongodb_faults;
mod netcdf;
mod newcomer;
mod panics;
mod real_flux_server;
mod rounding;
mod store;
mod store_format;
mod store_truth;
mod units;
mod what_was_read;
mod writers;
mod writers_generated;
