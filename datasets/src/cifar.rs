//! CIFAR-10 and CIFAR-100 from their "binary version" files
//! (<https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! - CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` (training) and `test_batch.bin`; each
//!   record is 1 label byte and 3072 pixel bytes.
//! - CIFAR-100: `train.bin` and `test.bin`; each record is a coarse label byte, a fine label
//!   byte and 3072 pixel bytes.
//!
//! Pixels are stored channel-major (1024 red, 1024 green, 1024 blue), rows top to bottom.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;

use crate::error::{DataError, Result};
use crate::image::{IMAGE_BYTES, ImageItem};

/// Which part of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training images (50 000).
    Train,
    /// The test images (10 000).
    Test,
}

/// Which CIFAR-100 label to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 20 superclasses.
    Coarse,
    /// The 100 classes.
    Fine,
}

/// A CIFAR split held in memory (3 KiB per image).
#[derive(Clone, Debug)]
pub struct CifarDataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    classes: usize,
    files: Vec<PathBuf>,
}

/// The folder CIFAR's archives unpack to, if `dir` holds it; else `dir`.
fn resolve(dir: &Path, subdir: &str, probe: &str) -> PathBuf {
    let nested = dir.join(subdir);
    if !dir.join(probe).exists() && nested.join(probe).exists() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn require(dir: &Path, names: &[String]) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    let missing: Vec<String> = names
        .iter()
        .zip(&paths)
        .filter(|(_, p)| !p.is_file())
        .map(|(name, path)| {
            if path.exists() {
                format!("{name} is not a file")
            } else {
                name.clone()
            }
        })
        .collect();
    if missing.is_empty() {
        Ok(paths)
    } else {
        Err(DataError::MissingFiles {
            dir: dir.to_path_buf(),
            expected: format!(
                "{} (missing: {})",
                names.join(", "),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

impl CifarDataset {
    /// Loads CIFAR-10 from `dir` (the folder holding the `.bin` files, or the one holding
    /// `cifar-10-batches-bin/`).
    pub fn cifar10(dir: impl AsRef<Path>, split: Split) -> Result<Self> {
        let dir = resolve(dir.as_ref(), "cifar-10-batches-bin", "test_batch.bin");
        let names: Vec<String> = match split {
            Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Split::Test => vec!["test_batch.bin".to_string()],
        };
        let mut dataset = Self {
            pixels: Vec::new(),
            labels: Vec::new(),
            classes: 10,
            files: Vec::new(),
        };
        for path in require(&dir, &names)? {
            dataset.append(&path, 1, 0)?;
        }
        Ok(dataset)
    }

    /// Loads CIFAR-100 from `dir` (the folder holding `train.bin` / `test.bin`, or the one
    /// holding `cifar-100-binary/`), with the coarse or the fine labels.
    pub fn cifar100(dir: impl AsRef<Path>, split: Split, labels: Cifar100Labels) -> Result<Self> {
        let dir = resolve(dir.as_ref(), "cifar-100-binary", "test.bin");
        let name = match split {
            Split::Train => "train.bin",
            Split::Test => "test.bin",
        };
        let (label_byte, classes) = match labels {
            Cifar100Labels::Coarse => (0, 20),
            Cifar100Labels::Fine => (1, 100),
        };
        let mut dataset = Self {
            pixels: Vec::new(),
            labels: Vec::new(),
            classes,
            files: Vec::new(),
        };
        for path in require(&dir, &[name.to_string()])? {
            dataset.append(&path, 2, label_byte)?;
        }
        Ok(dataset)
    }

    /// The files the split was read from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn append(&mut self, path: &Path, label_bytes: usize, label_index: usize) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|error| DataError::io(path, error))?;
        self.files.push(path.to_path_buf());
        let record = label_bytes + IMAGE_BYTES;
        if bytes.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
                what: format!("expected records of {record} bytes"),
            });
        }
        let whole = bytes.len() / record;
        if bytes.len() % record != 0 {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                offset: (whole * record) as u64,
                problem: format!(
                    "truncated record: {} bytes left, a record has {record} ({} label byte(s) + {IMAGE_BYTES} pixels); \
                     is this the right CIFAR version?",
                    bytes.len() - whole * record,
                    label_bytes
                ),
            });
        }
        self.pixels.reserve(whole * IMAGE_BYTES);
        for (index, chunk) in bytes.chunks_exact(record).enumerate() {
            let label = chunk[label_index];
            if label as usize >= self.classes {
                return Err(DataError::Malformed {
                    path: path.to_path_buf(),
                    offset: (index * record + label_index) as u64,
                    problem: format!(
                        "label {label} is not a class of this data set (0–{})",
                        self.classes - 1
                    ),
                });
            }
            self.labels.push(label);
            self.pixels.extend_from_slice(&chunk[label_bytes..]);
        }
        Ok(())
    }

    /// Number of classes (10, 20 or 100).
    pub fn classes(&self) -> usize {
        self.classes
    }
}

impl Dataset<ImageItem> for CifarDataset {
    fn get(&self, index: usize) -> Option<ImageItem> {
        let label = *self.labels.get(index)? as usize;
        let pixels = self.pixels[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES].to_vec();
        Some(ImageItem { pixels, label })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(labels: &[u8], seed: u8) -> Vec<u8> {
        let mut bytes = labels.to_vec();
        bytes.extend((0..IMAGE_BYTES).map(|i| (i as u8).wrapping_mul(seed)));
        bytes
    }

    fn write(dir: &Path, name: &str, records: &[Vec<u8>]) {
        std::fs::write(dir.join(name), records.concat()).unwrap();
    }

    #[test]
    fn loads_cifar10_values_labels_and_order() {
        let dir = tempfile::tempdir().unwrap();
        for batch in 1..=5u8 {
            write(
                dir.path(),
                &format!("data_batch_{batch}.bin"),
                &[record(&[batch], batch), record(&[9], 3)],
            );
        }
        write(dir.path(), "test_batch.bin", &[record(&[7], 11)]);
        let train = CifarDataset::cifar10(dir.path(), Split::Train).unwrap();
        assert_eq!(train.len(), 10);
        assert_eq!(train.classes(), 10);
        let labels: Vec<usize> = (0..10).map(|i| train.get(i).unwrap().label).collect();
        assert_eq!(labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(train.get(2).unwrap().pixels, record(&[2], 2)[1..].to_vec());
        assert!(train.get(10).is_none());
        let test = CifarDataset::cifar10(dir.path(), Split::Test).unwrap();
        assert_eq!(
            test.get(0).unwrap(),
            ImageItem {
                pixels: record(&[7], 11)[1..].to_vec(),
                label: 7
            }
        );
    }

    #[test]
    fn finds_the_unpacked_archive_folder() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write(&nested, "test_batch.bin", &[record(&[4], 1)]);
        assert_eq!(
            CifarDataset::cifar10(dir.path(), Split::Test)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn loads_cifar100_coarse_and_fine() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "train.bin",
            &[record(&[3, 77], 5), record(&[19, 99], 6)],
        );
        let fine = CifarDataset::cifar100(dir.path(), Split::Train, Cifar100Labels::Fine).unwrap();
        let coarse =
            CifarDataset::cifar100(dir.path(), Split::Train, Cifar100Labels::Coarse).unwrap();
        assert_eq!(
            (fine.get(0).unwrap().label, fine.get(1).unwrap().label),
            (77, 99)
        );
        assert_eq!(
            (coarse.get(0).unwrap().label, coarse.get(1).unwrap().label),
            (3, 19)
        );
        assert_eq!(
            fine.get(1).unwrap().pixels,
            record(&[19, 99], 6)[2..].to_vec()
        );
        assert_eq!((fine.classes(), coarse.classes()), (100, 20));
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "data_batch_1.bin", &[record(&[1], 1)]);
        let error = CifarDataset::cifar10(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("missing data files in {}", dir.path().display())),
            "{error}"
        );
        assert!(
            error.contains(
                "missing: data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin"
            ),
            "{error}"
        );
        // A directory where a batch file should be is named as such.
        std::fs::create_dir(dir.path().join("data_batch_2.bin")).unwrap();
        let error = CifarDataset::cifar10(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("missing: data_batch_2.bin is not a file, data_batch_3.bin,"),
            "{error}"
        );
        let error = CifarDataset::cifar100(dir.path(), Split::Test, Cifar100Labels::Fine)
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected test.bin"), "{error}");
    }

    #[test]
    fn truncated_file_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = [record(&[1], 1), record(&[2], 2)].concat();
        bytes.truncate(3073 + 100);
        std::fs::write(dir.path().join("test_batch.bin"), bytes).unwrap();
        let error = CifarDataset::cifar10(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        let path = dir.path().join("test_batch.bin");
        assert!(
            error.starts_with(&format!(
                "{} is malformed at byte offset 3073: truncated record: 100 bytes left",
                path.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn cifar100_file_read_as_cifar10_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        // Two CIFAR-100 records (3074 bytes each) are not a whole number of CIFAR-10 records.
        write(
            dir.path(),
            "test_batch.bin",
            &[record(&[3, 77], 5), record(&[1, 2], 5)],
        );
        let error = CifarDataset::cifar10(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is malformed at byte offset 6146"),
            "{error}"
        );
        // A label byte above 9 is caught where it is.
        write(
            dir.path(),
            "test_batch.bin",
            &[record(&[4], 1), record(&[200], 1)],
        );
        let error = CifarDataset::cifar10(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("at byte offset 3073: label 200 is not a class of this data set (0–9)"),
            "{error}"
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), b"").unwrap();
        let error = CifarDataset::cifar10(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
    }
}
