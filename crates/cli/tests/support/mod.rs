//! Helpers shared by the CLI's integration tests.

// Each test binary uses its own subset.
#![allow(dead_code)]

pub mod server;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `command` to its end with `input` on its standard input; its status and output.
pub fn run_with_input(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
