//! Reading text files line by line, streaming, with UTF-8 errors that say where.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The lines of a UTF-8 text file (without line terminators), read lazily.
pub struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    buffer: Vec<u8>,
    line: usize,
    offset: u64,
}

/// Opens `path` for line-by-line reading.
pub fn lines(path: &Path) -> Result<Lines> {
    let file = File::open(path).map_err(|error| DataError::io(path, error))?;
    Ok(Lines {
        path: path.to_path_buf(),
        reader: BufReader::with_capacity(1 << 20, file),
        buffer: Vec::new(),
        line: 0,
        offset: 0,
    })
}

impl Iterator for Lines {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buffer.clear();
        let read = match self.reader.read_until(b'\n', &mut self.buffer) {
            Ok(0) => return None,
            Ok(read) => read,
            Err(error) => return Some(Err(DataError::io(&self.path, error))),
        };
        self.line += 1;
        let start = self.offset;
        self.offset += read as u64;
        while matches!(self.buffer.last(), Some(b'\n' | b'\r')) {
            self.buffer.pop();
        }
        Some(match std::str::from_utf8(&self.buffer) {
            Ok(text) => Ok(text.to_string()),
            Err(error) => Err(DataError::InvalidUtf8 {
                path: self.path.clone(),
                line: self.line,
                offset: start + error.valid_up_to() as u64,
            }),
        })
    }
}

/// Every line of `path`, or the first error.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    lines(path)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_reports_invalid_utf8_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.txt");
        std::fs::write(&path, b"first line\r\nsecond\nbad \xff byte\n").unwrap();
        let mut iter = lines(&path).unwrap();
        assert_eq!(iter.next().unwrap().unwrap(), "first line");
        assert_eq!(iter.next().unwrap().unwrap(), "second");
        let error = iter.next().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} is not valid UTF-8 (line 3, byte offset 23)",
                path.display()
            )
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = read_lines(Path::new("/nonexistent/corpus.txt")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/corpus.txt"),
            "{error}"
        );
    }
}
