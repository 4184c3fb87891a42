use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = zonewatch::cli::Cli::parse();
    match zonewatch::app::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("zonewatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
