//! `manage plot -n NAME --output FILE.png`: a quick-look map of one time step
//! (drawn by [`crate::plot`]).

use std::path::PathBuf;

use crate::cmd::export::shortest;
use crate::error::{Error, Result};
use crate::plot::{self, Snapshot};
use crate::read::{Dataset, Kind};
use crate::store;
use crate::time::iso_date;

/// Draw a map of one time step of a dataset to a PNG file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Gridded data is drawn as cells of the dataset's `gridres` (1 degree when it has
none), point data as dots; null cells are grey. The colour scale is viridis, or
red-blue centred on zero when the values of that time change sign.

Examples:
  manage plot -n casa_2004 --output casa_2004.png
  manage plot -n casa_2004 --at 2004-06-30T12:00:00 --width 1600 -O noon.png
  manage plot -n kriged_2009 --param errors -O kriged_errors.png")]
#[command(mut_arg("name", |a| a.help("The dataset to plot")))]
#[command(mut_arg("at", |a| a.help("The time step to draw (ISO 8601, UTC unless an offset is given) [default: the first]")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    #[command(flatten)]
    pub at: crate::cmd::args::At,

    /// The parameter to draw: values, errors, ...
    #[arg(long, value_name = "PARAM", default_value = "values")]
    pub param: String,

    /// The PNG file to write
    #[arg(short = 'O', long = "output", value_name = "FILE.png")]
    pub output: PathBuf,

    /// Width of the image in pixels; the height follows the map's extent
    #[arg(long, value_name = "PX", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(320..=8000))]
    pub width: u32,

    /// Leave out the coastlines (Natural Earth: 1:110m on maps wider than
    /// 90 degrees, 1:50m on smaller regions)
    #[arg(long = "no-coastlines")]
    pub no_coastlines: bool,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let png = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return Err(Error::Usage(format!(
            "--output {}: plot writes PNG images; give a file name ending in .png",
            crate::error::shown(&args.output)
        )));
    }
    let at = args.at.millis()?;
    let store = store::open_for_reading(db)?;
    let dataset = Dataset::open(&*store, &args.dataset.name)?;
    let snap = Snapshot::read(&dataset, at, &args.param)?;
    let height = plot::draw(&snap, &args.output, args.width, !args.no_coastlines)?;

    let nulls = snap.marks.iter().filter(|m| m.value.is_none()).count();
    let range = match snap.range() {
        Some((lo, hi)) => format!(
            "{} from {} to {}{}",
            snap.param,
            shortest_text(lo),
            shortest_text(hi),
            if snap.units.is_empty() {
                String::new()
            } else {
                format!(" {}", snap.units)
            }
        ),
        None => format!("no {} (every one is null)", snap.param),
    };
    println!(
        "wrote {} ({} x {height} px): {} at {}Z, {} {}{}, {range}",
        crate::error::shown(&args.output),
        args.width,
        args.dataset.name,
        iso_date(snap.time),
        snap.marks.len(),
        if snap.kind == Kind::Gridded {
            "cells"
        } else {
            "points"
        },
        if nulls > 0 {
            format!(" ({nulls} null)")
        } else {
            String::new()
        },
    );
    Ok(())
}

fn shortest_text(x: f64) -> String {
    let mut s = String::new();
    shortest(x, &mut s);
    s
}
