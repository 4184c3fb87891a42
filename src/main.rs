use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = zonewatch::cli::Cli::parse();
    match zonewatch::app::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let e = anyhow::Error::from(e);
            // The cause chain, skipping causes a message already quotes
            // (errors that print "{path}: {source}" also keep the source).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("zonewatch: error: {msg}");
            ExitCode::from(2)
        }
    }
}
