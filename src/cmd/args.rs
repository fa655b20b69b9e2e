//! Arguments that several commands take, each defined once and flattened
//! into the commands' `Args` (`#[command(flatten)]`), so that their
//! spellings, help and parsing cannot drift apart. A command that says
//! more of one in its help overrides the text with `mut_arg`. `--db` is
//! the binary's one global argument (see `main.rs`).

use clap::builder::{PossibleValue, TypedValueParser};

use crate::config::parse_timestamp;
use crate::error::{Error, Result};
use crate::model::ModelKind;

/// `-n NAME`: the dataset a command works on (flattened as an `Option` where
/// it may be left out, as in `db`).
#[derive(Debug, Clone, clap::Args)]
pub struct Name {
    /// The dataset (MongoDB collection)
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: String,
}

/// `--at TIME`: one time step of a dataset.
#[derive(Debug, Clone, clap::Args)]
pub struct At {
    /// The time step (ISO 8601, UTC unless an offset is given)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

impl At {
    /// The time as milliseconds since the epoch.
    pub fn millis(&self) -> Result<Option<i64>> {
        self.at
            .as_deref()
            .map(|t| {
                parse_timestamp(t)
                    .map(|t| t.timestamp_millis())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "--at '{t}' is not a valid ISO 8601 time such as 2004-06-30T03:00:00"
                        ))
                    })
            })
            .transpose()
    }
}

/// `-m MODEL`: the models' names, from [`ModelKind`]'s table, as its
/// possible values (in `--help`, completions and the manual page). Any text
/// is taken, so that an unknown model is refused by the command in one line
/// with exit code 1, as every other refusal of `load`'s input is (see
/// [`ModelKind::parse`]).
#[derive(Debug, Clone, Copy)]
pub struct ModelName;

impl TypedValueParser for ModelName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        use clap::ValueEnum;
        Some(Box::new(
            ModelKind::value_variants()
                .iter()
                .filter_map(|k| k.to_possible_value()),
        ))
    }
}

impl clap::ValueEnum for ModelKind {
    fn value_variants<'a>() -> &'a [Self] {
        ModelKind::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}
