//! The error every loader returns: bad input is reported with where it is and what was
//! expected — never a panic, never silently skipped data.

use std::path::PathBuf;

/// What went wrong while reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Expected files are not there.
    #[error("missing data files in {dir}: expected {expected}")]
    MissingFiles {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file names (or pattern) expected there.
        expected: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A binary file does not have the structure its format prescribes.
    #[error("{path} is malformed at byte offset {offset}: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem starts.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// Line-aligned parallel files do not have the same number of lines.
    #[error(
        "parallel files differ in length: {source_path} has {source_lines} lines, {target_path} has {target_lines}"
    )]
    LineCountMismatch {
        /// The source-side file.
        source_path: PathBuf,
        /// Its line count.
        source_lines: usize,
        /// The target-side file.
        target_path: PathBuf,
        /// Its line count.
        target_lines: usize,
    },
    /// A corpus has no usable content.
    #[error("{path} is empty: {what}")]
    Empty {
        /// The file or directory.
        path: PathBuf,
        /// What was needed.
        what: String,
    },
    /// A text file is not valid UTF-8.
    #[error("{path} is not valid UTF-8 (line {line}, byte offset {offset})")]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// Byte offset of the line's start.
        offset: u64,
    },
    /// A parameter makes no sense for the data.
    #[error("invalid data configuration: {0}")]
    Invalid(String),
    /// The tokenizer failed.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of the data loaders.
pub type Result<T> = std::result::Result<T, DataError>;
