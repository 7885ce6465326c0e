//! Token id streams, held in memory or in a file of little-endian `u32`s that is read window by
//! window (for corpora larger than memory).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{DataError, Result};
use crate::files::partial_path;

/// A sequence of token ids.
#[derive(Clone, Debug)]
pub enum TokenStream {
    /// All ids in memory.
    Memory(Arc<Vec<u32>>),
    /// Ids in a file, 4 bytes each (little-endian), read on demand.
    File(Arc<TokenFile>),
}

/// A file of little-endian `u32` token ids.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    file: Mutex<File>,
    len: usize,
}

impl TokenFile {
    /// Opens a token file written by [`TokenFileWriter`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let bytes = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        if bytes % 4 != 0 {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                offset: bytes - bytes % 4,
                problem: "a token file holds 4-byte ids; the last one is cut short".to_string(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            len: (bytes / 4) as usize,
        })
    }

    fn read(&self, start: usize, out: &mut [u32]) -> Result<()> {
        let mut bytes = vec![0u8; out.len() * 4];
        let mut file = self.file.lock().expect("token file lock poisoned");
        file.seek(SeekFrom::Start(start as u64 * 4))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| DataError::io(&self.path, e))?;
        for (id, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *id = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        }
        Ok(())
    }
}

/// Writes token ids to a file, buffered. The ids go to a temporary file beside `path`, which
/// becomes `path` only in [`finish`](Self::finish): an interrupted tokenisation never leaves a
/// truncated token file that a later run would trust.
pub struct TokenFileWriter {
    path: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
}

impl TokenFileWriter {
    /// Starts writing `path` (an existing file stays until [`finish`](Self::finish)).
    pub fn create(path: &Path) -> Result<Self> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|e| DataError::io(&partial, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// Appends ids.
    pub fn write(&mut self, ids: &[u32]) -> Result<()> {
        for id in ids {
            self.out
                .write_all(&id.to_le_bytes())
                .map_err(|e| DataError::io(&self.partial, e))?;
        }
        Ok(())
    }

    /// Flushes, puts the file in place and opens it for reading.
    pub fn finish(mut self) -> Result<TokenFile> {
        self.out
            .flush()
            .map_err(|e| DataError::io(&self.partial, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| DataError::io(&self.path, e))?;
        TokenFile::open(&self.path)
    }
}

impl TokenStream {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        match self {
            TokenStream::Memory(ids) => ids.len(),
            TokenStream::File(file) => file.len,
        }
    }

    /// Whether the stream has no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies ids `start..start + out.len()` into `out`.
    ///
    /// # Panics
    /// If the range runs past the end, or the token file cannot be read any more (it was
    /// readable when opened).
    pub fn read(&self, start: usize, out: &mut [u32]) {
        assert!(
            start + out.len() <= self.len(),
            "token range past the end of the stream"
        );
        match self {
            TokenStream::Memory(ids) => out.copy_from_slice(&ids[start..start + out.len()]),
            TokenStream::File(file) => file
                .read(start, out)
                .unwrap_or_else(|error| panic!("{error}")),
        }
    }

    /// How many tokens of the stream are `id` (read in chunks: a file stream stays on disk).
    pub fn count(&self, id: u32) -> usize {
        const CHUNK: usize = 1 << 20;
        let mut buffer = vec![0; CHUNK.min(self.len())];
        let mut found = 0;
        let mut start = 0;
        while start < self.len() {
            let chunk = &mut buffer[..CHUNK.min(self.len() - start)];
            self.read(start, chunk);
            found += chunk.iter().filter(|&&token| token == id).count();
            start += chunk.len();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_finds_every_occurrence_in_memory_and_on_disk() {
        let ids: Vec<u32> = (0..5000).map(|i| (i * 7 % 13) as u32).collect();
        let expected = ids.iter().filter(|&&id| id == 0).count();
        assert_eq!(expected, 385);
        assert_eq!(
            TokenStream::Memory(Arc::new(ids.clone())).count(0),
            expected
        );
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TokenFileWriter::create(&dir.path().join("ids.u32")).unwrap();
        writer.write(&ids).unwrap();
        let file = TokenStream::File(Arc::new(writer.finish().unwrap()));
        assert_eq!(file.count(0), expected);
        assert_eq!(file.count(99), 0);
    }

    #[test]
    fn file_and_memory_streams_read_the_same_windows() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u32> = (0..1000).map(|i| i * 7 + 70_000).collect();
        let mut writer = TokenFileWriter::create(&dir.path().join("train.u32")).unwrap();
        writer.write(&ids[..400]).unwrap();
        writer.write(&ids[400..]).unwrap();
        let file = TokenStream::File(Arc::new(writer.finish().unwrap()));
        let memory = TokenStream::Memory(Arc::new(ids));
        assert_eq!(file.len(), 1000);
        let (mut a, mut b) = (vec![0; 37], vec![0; 37]);
        file.read(555, &mut a);
        memory.read(555, &mut b);
        assert_eq!(a, b);
        assert_eq!(a[0], 555 * 7 + 70_000);
    }

    #[test]
    fn truncated_token_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.u32");
        std::fs::write(&path, [1u8, 0, 0, 0, 2, 0]).unwrap();
        let error = TokenFile::open(&path).unwrap_err().to_string();
        assert!(error.contains("malformed at byte offset 4"), "{error}");
    }
}
