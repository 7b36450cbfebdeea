//! The binary's only writers to stdout and stderr, so every other module stays print-free.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

/// A line of command output on stdout. A closed pipe (`cordon audit tail | head`) ends quietly.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").is_err() {
        std::process::exit(0);
    }
}

/// Flush stdout (for `tail --follow`).
pub fn flush() {
    let _ = std::io::stdout().flush();
}

/// An error for a person, on stderr.
pub fn error(text: &str) {
    eprintln!("cordon: error: {text}");
}

/// A warning for a person, on stderr.
pub fn warn(text: &str) {
    eprintln!("cordon: warning: {text}");
}

/// A status line for a person, on stderr (stdout stays machine-readable).
pub fn info(text: &str) {
    eprintln!("{text}");
}

/// Overwrite the current terminal line on stderr (progress); an empty text clears it.
pub fn progress(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
}

/// Bytes of a sandboxed command's output, passed through as they arrive. A closed pipe drops
/// the rest: the command still runs to its end and its audit record is still written.
pub fn passthrough(stderr: bool, bytes: &[u8]) {
    let _ = if stderr {
        let mut err = std::io::stderr().lock();
        err.write_all(bytes).and_then(|()| err.flush())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|()| out.flush())
    };
}
