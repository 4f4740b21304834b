//! How commands print data: `--output text|json|yaml` on stdout.

use std::io::Write as _;

use clap::ValueEnum;
use serde_json::Value;

use crate::cli::error::CliError;

/// How data is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints data as text, JSON or YAML.
pub fn print_data(
    output: Output,
    value: &Value,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    let rendered = match output {
        Output::Text => text(),
        Output::Json => format!("{value:#}"),
        Output::Yaml => serde_saphyr::to_string(value).map_err(|e| CliError::Usage {
            reason: format!("cannot render YAML: {e}"),
            hint: "use --output json".to_owned(),
        })?,
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", rendered.trim_end())
        .and_then(|()| writeln!(out))
        .map_err(|e| CliError::io("cannot write to stdout", e))
}

/// Prints a command's result for scripts on stdout (`--output json|yaml`). With `text` there is
/// nothing to print there: the command's messages on stderr say it all.
pub fn print_result(output: Output, value: &serde_json::Value) -> Result<(), CliError> {
    if output == Output::Text {
        return Ok(());
    }
    print_data(output, value, String::new)
}
