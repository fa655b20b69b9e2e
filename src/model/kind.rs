//! The table of models: what the program knows of each model beside its
//! code. `-m`, `manage models`, `load --help`, the config keys `manage`
//! understands and the recognition of a stored dataset's layout all go
//! through [`ModelKind::ALL`], so a model is added by its own file (which
//! defines its [`ModelSpec`]) and one line there.

use bson::Document;

use super::{base, cfgrid, fields, kriged, spatiotemporal, xco2, Model};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::source::MatrixInfo;

/// One model: its names, the matrix it reads, its config and how it is built.
pub struct ModelSpec {
    /// The `-m` value, as the old tool named its model class.
    pub name: &'static str,
    /// The mediator the old tool paired with the model (`-d` default).
    pub mediator: &'static str,
    /// The matrix holds x, y, then one column per time step, so a file of a
    /// single step is also Grid3D.
    pub steps_in_columns: bool,
    /// The model whose documents and metadata this one writes, when it is
    /// another's (CFGrid writes SpatioTemporalMatrix's).
    pub writes_as: Option<&'static ModelSpec>,
    /// The names of the parameters the model stores, in its documents and
    /// the metadata `stats`.
    pub parameters: &'static [&'static str],
    /// The config keys the model reads beyond those every model reads.
    pub keys: &'static [&'static str],
    /// How a stored `metadata` entry of its layout is told from the others'
    /// (`None` when it writes another model's, see `writes_as`).
    pub mark: Option<Mark>,
    /// The matrix it reads, in words (`--help` and `manage models`).
    pub shape: &'static str,
    /// The config keys a load cannot do without.
    pub required: &'static str,
    /// The commented example config shipped in `configs/` (tested to load
    /// the sample data it names).
    pub example_config: &'static str,
    /// The model's default config, the bottom layer under the user's.
    pub defaults: fn() -> serde_json::Map<String, serde_json::Value>,
    /// Build the model from its config.
    pub build: fn(&str, &Config) -> Result<Box<dyn Model>>,
}

/// What only one layout writes in a `metadata` entry.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// Point data: `gridded: false`, or a `geometry`.
    Points,
    /// A grid with this list (`spans`, `steps`).
    List(&'static str),
}

impl Mark {
    fn is_on(self, md: &Document) -> bool {
        match self {
            Mark::Points => {
                md.get_bool(fields::GRIDDED).ok() == Some(false)
                    || md.contains_key(fields::GEOMETRY)
            }
            Mark::List(key) => md.get_array(key).is_ok(),
        }
    }
}

/// A `-m` value: one model of the table.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static ModelSpec);

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ModelKind {}

impl std::fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl ModelKind {
    /// Every model, in the order `manage models` and the errors list them.
    pub const ALL: &'static [ModelKind] = &[
        ModelKind(&spatiotemporal::SPEC),
        ModelKind(&kriged::SPEC),
        ModelKind(&xco2::SPEC),
        ModelKind(&cfgrid::SPEC),
    ];

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                Error::Usage(format!(
                    "unknown model '{s}': use one of {}",
                    names.join(", ")
                ))
            })
    }

    /// The model's entry in the table.
    pub fn spec(self) -> &'static ModelSpec {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The mediator the old tool paired with the model (`-d` default).
    pub fn mediator(self) -> &'static str {
        self.0.mediator
    }

    /// Check a `-d` mediator against the model. A mediator names a shape of
    /// data: Grid4D a grid with many times, Grid3D a grid at one time,
    /// Unstructured3D points. Without `info` only the name and the pairing
    /// are checked; with it, the matrix must also have that shape (a
    /// SpatioTemporalMatrix is Grid3D when it holds a single step).
    pub fn check_mediator(self, mediator: &str, info: Option<&MatrixInfo>) -> Result<()> {
        const MEDIATORS: [&str; 3] = ["Grid4D", "Grid3D", "Unstructured3D"];
        // The old tool's class names (Grid3DMediator) are accepted too.
        let m = mediator.strip_suffix("Mediator").unwrap_or(mediator);
        if !MEDIATORS.contains(&m) {
            return Err(Error::Usage(format!(
                "unknown mediator '{mediator}': use one of {}",
                MEDIATORS.join(", ")
            )));
        }
        let steps = self.0.steps_in_columns;
        let fits =
            m == self.mediator() || (steps && m == "Grid3D" && info.is_none_or(|i| i.cols == 3));
        if fits {
            return Ok(());
        }
        let shape = if steps {
            format!(
                "{}, or Grid3D for a file of a single time step",
                self.mediator()
            )
        } else {
            self.mediator().to_string()
        };
        let found = match info {
            Some(i) if steps => {
                format!(
                    " ({} has {} time steps)",
                    crate::error::shown(&i.path),
                    i.cols - 2
                )
            }
            _ => String::new(),
        };
        Err(Error::Usage(format!(
            "mediator '{mediator}' does not fit model {}{found}; it takes {shape}",
            self.name()
        )))
    }

    /// The model whose documents and metadata this model writes: CFGrid
    /// writes SpatioTemporalMatrix's, so either adds to the other's datasets.
    pub fn layout(self) -> ModelKind {
        self.0.writes_as.map_or(self, ModelKind)
    }

    /// The model layout a stored `metadata` entry was written by, told by
    /// the fields only that layout writes (see [`ModelSpec::mark`]): the
    /// point layout first, then the first model of the table whose list the
    /// entry has. `None` when it is none of them.
    pub fn of_metadata(md: &Document) -> Option<ModelKind> {
        let marked = |points: bool| {
            Self::ALL.iter().copied().find(|k| {
                k.0.mark
                    .is_some_and(|m| matches!(m, Mark::Points) == points && m.is_on(md))
            })
        };
        marked(true).or_else(|| marked(false))
    }

    /// The layout's name as a dataset's model, with the other models that
    /// write it: "SpatioTemporalMatrix (or CFGrid)".
    pub fn layout_name(self) -> String {
        let layout = self.layout();
        let others: Vec<&str> = Self::ALL
            .iter()
            .filter(|k| **k != layout && k.layout() == layout)
            .map(|k| k.name())
            .collect();
        if others.is_empty() {
            layout.name().to_string()
        } else {
            format!("{} (or {})", layout.name(), others.join(" or "))
        }
    }

    /// The names of the parameters the model stores, in its documents and
    /// the metadata `stats`.
    pub fn parameters(self) -> &'static [&'static str] {
        self.0.parameters
    }

    /// The old tool's keys that change nothing here, given with another
    /// value than the model's default: each `(key, where it was given,
    /// why it is ignored)`. `header` named the coordinate columns of the old
    /// tool's tables, `parameters` the stored fields, `formats` the text
    /// format of each column; the models store fixed fields (see
    /// [`ModelKind::parameters`]), coordinates as x and y with 5 decimals
    /// and values with `precision` decimals.
    pub fn ignored_keys(self, config: &Config) -> Vec<(&'static str, String, String)> {
        let defaults = self.defaults();
        let mut out = Vec::new();
        for key in ["header", "parameters", "formats"] {
            let Some((value, origin)) = config.get(key) else {
                continue;
            };
            if defaults.get(key) == Some(value) {
                continue;
            }
            let why = match key {
                "header" => "coordinates are stored and exported as x and y".to_string(),
                "parameters" => {
                    format!("{} stores {}", self.name(), self.parameters().join(" and "))
                }
                _ => "values keep `precision` decimals and coordinates 5".to_string(),
            };
            out.push((key, origin.to_string(), why));
        }
        out
    }

    /// The matrix the model reads, in words.
    pub fn shape(self) -> &'static str {
        self.0.shape
    }

    /// The config keys a load of the model cannot do without.
    pub fn required(self) -> &'static str {
        self.0.required
    }

    /// The commented example config shipped in `configs/` (tested to load
    /// the sample data it names).
    pub fn example_config(self) -> &'static str {
        self.0.example_config
    }

    /// The model's default config, the bottom layer under the user's.
    pub fn defaults(self) -> serde_json::Map<String, serde_json::Value> {
        (self.0.defaults)()
    }

    /// Build the model from its config; every config error surfaces here,
    /// before any file or store is touched.
    pub fn build(self, name: &str, config: &Config) -> Result<Box<dyn Model>> {
        (self.0.build)(name, config)
    }
}

/// Whether some model reads config key `key`; the others are kept in the
/// metadata document and named in a warning.
pub fn is_known_key(key: &str) -> bool {
    base::KEYS.contains(&key) || ModelKind::ALL.iter().any(|k| k.0.keys.contains(&key))
}

/// Every config key some model reads: those of every model, then each
/// model's own, in the table's order (for `load --help`).
pub fn known_keys() -> Vec<&'static str> {
    let mut keys = base::KEYS.to_vec();
    for k in ModelKind::ALL.iter().flat_map(|k| k.0.keys) {
        if !keys.contains(k) {
            keys.push(k);
        }
    }
    keys
}

/// The models, their matrices, required keys and defaults, as one table
/// built from the models' own definitions (for `load --help` and
/// `manage models`).
pub fn models_table() -> String {
    let mut out = String::from("Models (-m), the matrix each reads, and its config:\n");
    for kind in ModelKind::ALL {
        out.push_str(&format!(
            "\n  {} (mediator {})\n    matrix:   {}\n    required: {}\n",
            kind.name(),
            kind.mediator(),
            kind.shape(),
            kind.required()
        ));
        let defaults: Vec<String> = kind
            .defaults()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut line = String::from("    defaults:");
        for d in defaults {
            if line.len() + d.len() > 78 && !line.ends_with(':') {
                out.push_str(&line);
                out.push('\n');
                line = String::from("             ");
            }
            line.push(' ');
            line.push_str(&d);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(
        "\nWithout a var_name, the first variable whose name does not start with __ is read.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn the_known_keys_are_the_common_ones_and_the_models() {
        for key in [
            "var_name",
            "timestamp",
            "step",
            "steps",
            "span",
            "spans",
            "columns",
            "gridres",
            "grid",
            "header",
            "parameters",
            "title",
            "units",
            "precision",
            "formats",
            "regex",
            "drop_empty_cells",
            "coarsen",
        ] {
            assert!(is_known_key(key), "{key}");
        }
        assert!(!is_known_key("colour"));
    }

    #[test]
    fn a_stored_metadata_entry_names_its_layout() {
        let of = |md: Document| ModelKind::of_metadata(&md).map(ModelKind::name);
        assert_eq!(of(doc! {"gridded": false}), Some("XCO2Matrix"));
        assert_eq!(of(doc! {"steps": [1], "geometry": {}}), Some("XCO2Matrix"));
        assert_eq!(of(doc! {"spans": [1]}), Some("KrigedXCO2Matrix"));
        assert_eq!(of(doc! {"steps": [1]}), Some("SpatioTemporalMatrix"));
        assert_eq!(of(doc! {"gridded": true}), None);
        let cf = ModelKind::parse("CFGrid").unwrap();
        assert_eq!(
            cf.layout(),
            ModelKind::parse("SpatioTemporalMatrix").unwrap()
        );
        assert_eq!(cf.layout_name(), "SpatioTemporalMatrix (or CFGrid)");
        assert_eq!(
            ModelKind::parse("XCO2Matrix").unwrap().layout_name(),
            "XCO2Matrix"
        );
    }
}
