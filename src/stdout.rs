//! What the CLI prints on standard output, written so that a failed write is an error value.
//! `print!` and `println!` panic when the write fails, which `steward … | head` makes happen
//! as soon as `head` has read enough and exits. Standard error likewise, through [`errln!`]:
//! `eprintln!` panics on `steward … 2>&1 | head` too.

use std::fmt;
use std::io::{self, Write};

/// A write to standard output that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(io::Error);

impl StdoutError {
    /// Whether the reader closed its end of the pipe: it has read all it wanted.
    pub fn reader_left(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes `text` to standard output and flushes it, so that the error of this write is
/// returned here rather than lost when the process exits with text still buffered.
pub fn write(text: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Whether `error`, or an error it was caused by, is a write to standard output whose reader
/// left. Only stdout's own error counts: a broken pipe to the database is a failure.
pub fn reader_left(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(StdoutError::reader_left)
    })
}

/// `print!` returning `Result<(), StdoutError>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` returning `Result<(), StdoutError>` instead of panicking.
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes one line to standard error. A failed write has nowhere left to be reported (stderr
/// is where failures go), so it is dropped: the command's exit code still tells the outcome.
pub fn error_line(text: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if err.write_fmt(format_args!("{text}\n")).is_err() {
        // Nowhere to say it: see above.
    }
}

/// `eprintln!` that never panics (see [`error_line`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::stdout::error_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: io::ErrorKind) -> StdoutError {
        StdoutError(io::Error::from(kind))
    }

    #[test]
    fn a_reader_that_left_is_found_under_context() {
        let error = anyhow::Error::from(failed(io::ErrorKind::BrokenPipe)).context("listing");
        assert!(reader_left(&error));
    }

    #[test]
    fn other_write_errors_and_other_broken_pipes_are_failures() {
        let full = anyhow::Error::from(failed(io::ErrorKind::StorageFull));
        assert!(!reader_left(&full));
        assert_eq!(
            format!("{full:#}"),
            format!(
                "cannot write to standard output: {}",
                io::Error::from(io::ErrorKind::StorageFull)
            )
        );
        // A database connection's broken pipe is not the reader leaving.
        let socket = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!reader_left(&socket));
    }
}
