//! `mozaiks doctor`: runs the checks of [`mozaiks_host::run_doctor`] and prints
//! each finding with its fix.

use std::process::ExitCode;

use super::ConfigArgs;

pub(crate) async fn run(args: &ConfigArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let report = mozaiks_host::run_doctor(&args.overrides()).await;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
