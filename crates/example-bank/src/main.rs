//! `cargo run -p factum-example-bank`: the article's bank, end to end, on a durable embedded
//! store in a temporary directory that is removed at the end. No service, no arguments.

use std::process::ExitCode;

use factum_example_bank::{BUSY_EVENTS_DEFAULT, DemoDir, ExampleError};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The error and its causes, on one line.
            let mut line = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(source) = cause {
                line.push_str(&format!(": {source}"));
                cause = source.source();
            }
            eprintln!("factum-example-bank: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ExampleError> {
    let dir = DemoDir::temporary()?;
    let mut out = std::io::stdout();
    factum_example_bank::run_embedded(dir.path(), BUSY_EVENTS_DEFAULT, &mut out).await?;
    Ok(())
}
