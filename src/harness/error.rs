//! Why a run could not start or finish, and how a program ends on it.

use std::fmt;
use std::path::Path;

/// Why a run could not start or finish.
#[derive(Debug)]
pub enum HarnessError {
    /// A flag's value is unusable.
    Invalid(String),
    /// The data could not be loaded.
    Data(radam_datasets::DataError),
    /// `--resume` found nothing to resume, or a different run.
    Resume(String),
    /// The artifact directory could not be written.
    Io(String),
    /// The training loss stopped being a finite number.
    Diverged(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(message)
            | Self::Resume(message)
            | Self::Io(message)
            | Self::Diverged(message) => f.write_str(message),
            Self::Data(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for HarnessError {}

impl From<radam_datasets::DataError> for HarnessError {
    fn from(error: radam_datasets::DataError) -> Self {
        Self::Data(error)
    }
}

/// The error of failing to `what` ("write", "read") the file at `path`.
pub(crate) fn io_error(what: &str, path: &Path, error: impl fmt::Display) -> HarnessError {
    HarnessError::Io(format!("cannot {what} {}: {error}", path.display()))
}

/// Runs `main` and turns its error into a message on standard error and exit code 2.
pub fn exit_on_error(main: impl FnOnce() -> Result<(), HarnessError>) -> std::process::ExitCode {
    match main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(2)
        }
    }
}
