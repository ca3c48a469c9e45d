//! `mozaiks import mozaiksai <folder> [--out DIR]`: converts a MozaiksAI
//! workflow folder, prints the report and what the loader says of the
//! result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mozaiks_host::{ImportError, import_mozaiksai};

/// Exit code when the folder was written but does not load yet for other
/// reasons than the tools still to port.
const WRITTEN_WITH_PROBLEMS: u8 = 2;

pub(crate) fn mozaiksai(folder: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let out =
        out.unwrap_or_else(|| PathBuf::from(folder.file_name().unwrap_or(folder.as_os_str())));
    match import_mozaiksai(folder, &out) {
        Ok(imported) => {
            print!(
                "{}",
                imported
                    .converted
                    .report
                    .render(&folder.display().to_string())
            );
            println!();
            println!(
                "Wrote {} and the report {}.",
                imported.out.display(),
                imported.report_file.display()
            );
            println!("{}", imported.verdict.to_string().trim_end());
            Ok(if imported.verdict.is_valid_except_tools() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(WRITTEN_WITH_PROBLEMS)
            })
        }
        Err(ImportError::Read(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "error: {} could not be imported: {} file(s) do not parse",
                folder.display(),
                errors.len()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}
