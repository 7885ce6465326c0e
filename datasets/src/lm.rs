//! Word-level language-modelling corpora and their batching for truncated back-propagation
//! through time.
//!
//! - Penn Treebank / WikiText layout: `train.txt`, `valid.txt`, `test.txt`, one sentence or
//!   paragraph per line, words separated by spaces. Loaded into memory.
//! - One Billion Word layout (`1-billion-word-language-modeling-benchmark-r13output/`): training
//!   shards `training-monolingual.tokenized.shuffled/news.en-000NN-of-00100`, held-out shards
//!   `heldout-monolingual.tokenized.shuffled/news.en.heldout-000NN-of-00050` (shard 0 is the test
//!   set, shard 1 the validation set). Streamed shard by shard into token files in a cache
//!   folder, so that memory holds one line at a time.
//!
//! Every line ends with `<eos>`; the vocabulary comes from the training data only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::batch::LmBatch;
use crate::error::{DataError, Result};
use crate::files::Fingerprint;
use crate::text::lines;
use crate::tokens::{TokenFileWriter, TokenStream};
use crate::vocab::{Vocabulary, WordCounter};

/// A tokenised corpus: vocabulary and the three splits.
#[derive(Clone, Debug)]
pub struct LmCorpus {
    /// The vocabulary (from the training split).
    pub vocab: Vocabulary,
    /// Training tokens.
    pub train: TokenStream,
    /// Validation tokens.
    pub valid: TokenStream,
    /// Test tokens.
    pub test: TokenStream,
    /// The lowest perplexity any model can reach, when the corpus comes from a known source.
    pub optimal_perplexity: Option<f64>,
    /// The files the corpus was read from (none for the built-in one).
    pub files: Vec<PathBuf>,
}

/// How to build or reuse the vocabulary.
#[derive(Clone, Debug)]
pub struct VocabularyOptions {
    /// Words seen fewer times than this in training become `<unk>`.
    pub min_count: u64,
    /// Load the vocabulary from this file if it exists; otherwise build it and save it there.
    pub file: Option<PathBuf>,
}

impl Default for VocabularyOptions {
    fn default() -> Self {
        Self {
            min_count: 1,
            file: None,
        }
    }
}

fn vocabulary(
    options: &VocabularyOptions,
    count: impl FnOnce() -> Result<WordCounter>,
) -> Result<Vocabulary> {
    if let Some(file) = &options.file
        && file.is_file()
    {
        return Vocabulary::load(file);
    }
    let vocab = count()?.build(options.min_count);
    if let Some(file) = &options.file {
        vocab.save(file)?;
    }
    Ok(vocab)
}

fn encode_in_memory(path: &Path, vocab: &Vocabulary) -> Result<TokenStream> {
    let mut ids = Vec::new();
    for line in lines(path)? {
        vocab.encode_line(&line?, &mut ids);
    }
    if ids.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            what: "a corpus split needs at least one line".to_string(),
        });
    }
    Ok(TokenStream::Memory(Arc::new(ids)))
}

fn missing(dir: &Path, expected: &str) -> DataError {
    DataError::MissingFiles {
        dir: dir.to_path_buf(),
        expected: expected.to_string(),
    }
}

impl LmCorpus {
    /// Loads a Penn Treebank / WikiText style directory (`train.txt`, `valid.txt`, `test.txt`).
    pub fn word_level(dir: impl AsRef<Path>, options: &VocabularyOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let [train, valid, test] =
            ["train.txt", "valid.txt", "test.txt"].map(|name| dir.join(name));
        let absent: Vec<&str> = [
            (&train, "train.txt"),
            (&valid, "valid.txt"),
            (&test, "test.txt"),
        ]
        .iter()
        .filter(|(path, _)| !path.is_file())
        .map(|(_, name)| *name)
        .collect();
        if !absent.is_empty() {
            return Err(missing(
                dir,
                &format!(
                    "train.txt, valid.txt, test.txt (missing: {})",
                    absent.join(", ")
                ),
            ));
        }
        let vocab = vocabulary(options, || {
            let mut counter = WordCounter::default();
            counter.add_file(&train)?;
            Ok(counter)
        })?;
        if vocab.is_empty() {
            return Err(DataError::Empty {
                path: train,
                what: "the training split has no word".to_string(),
            });
        }
        let mut files = vec![train.clone(), valid.clone(), test.clone()];
        files.extend(options.file.iter().filter(|file| file.is_file()).cloned());
        Ok(Self {
            train: encode_in_memory(&train, &vocab)?,
            valid: encode_in_memory(&valid, &vocab)?,
            test: encode_in_memory(&test, &vocab)?,
            vocab,
            optimal_perplexity: None,
            files,
        })
    }

    /// Loads the One Billion Word benchmark from `dir` (the folder holding
    /// `training-monolingual.tokenized.shuffled/` and `heldout-monolingual.tokenized.shuffled/`),
    /// streaming every shard into token files under `cache_dir/<fingerprint>/`, where the
    /// fingerprint covers every shard's name, size and modification time and `min_count`: a
    /// later run reuses the files only while the data is unchanged. Every cache file is written
    /// atomically, so an interrupted tokenisation is redone, never trusted. The paper's setting
    /// is `min_count = 4` (words seen ≤ 3 times become `<unk>`).
    pub fn one_billion_word(
        dir: impl AsRef<Path>,
        cache_dir: impl AsRef<Path>,
        min_count: u64,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let cache_dir = cache_dir.as_ref();
        let train_dir = dir.join("training-monolingual.tokenized.shuffled");
        let heldout_dir = dir.join("heldout-monolingual.tokenized.shuffled");
        let shards = |folder: &Path, prefix: &str| -> Result<Vec<PathBuf>> {
            let entries = std::fs::read_dir(folder).map_err(|_| {
                missing(
                    dir,
                    &format!(
                        "{}/{prefix}*",
                        folder.file_name().unwrap_or_default().to_string_lossy()
                    ),
                )
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(missing(folder, &format!("{prefix}* shard files")));
            }
            Ok(found)
        };
        let train_shards = shards(&train_dir, "news.en-")?;
        let heldout = shards(&heldout_dir, "news.en.heldout-")?;
        let mut fingerprint = Fingerprint::new().with(&min_count.to_le_bytes());
        for shard in train_shards.iter().chain(&heldout) {
            fingerprint = fingerprint
                .with_file(shard)
                .map_err(|e| DataError::io(shard, e))?;
        }
        let cache_dir = &cache_dir.join(fingerprint.hex());
        std::fs::create_dir_all(cache_dir).map_err(|e| DataError::io(cache_dir, e))?;

        let vocab_file = cache_dir.join(format!("vocab-min{min_count}.txt"));
        let fresh_vocab = !vocab_file.is_file();
        let vocab = vocabulary(
            &VocabularyOptions {
                min_count,
                file: Some(vocab_file),
            },
            || {
                let mut counter = WordCounter::default();
                for shard in &train_shards {
                    counter.add_file(shard)?;
                }
                Ok(counter)
            },
        )?;
        let encode = |name: &str, files: &[PathBuf]| -> Result<TokenStream> {
            let path = cache_dir.join(format!("{name}-min{min_count}.u32"));
            if !fresh_vocab && path.is_file() {
                return Ok(TokenStream::File(Arc::new(crate::tokens::TokenFile::open(
                    &path,
                )?)));
            }
            let mut writer = TokenFileWriter::create(&path)?;
            let mut ids = Vec::new();
            for file in files {
                for line in lines(file)? {
                    ids.clear();
                    vocab.encode_line(&line?, &mut ids);
                    writer.write(&ids)?;
                }
            }
            let file = writer.finish()?;
            Ok(TokenStream::File(Arc::new(file)))
        };
        let test = encode("test", &heldout[..1])?;
        let valid = if heldout.len() > 1 {
            encode("valid", &heldout[1..2])?
        } else {
            test.clone()
        };
        let read = heldout.len().min(2);
        Ok(Self {
            train: encode("train", &train_shards)?,
            valid,
            test,
            vocab,
            optimal_perplexity: None,
            files: train_shards
                .into_iter()
                .chain(heldout.into_iter().take(read))
                .collect(),
        })
    }
}

/// One window of a stream for truncated BPTT: `seq_len` inputs and the `seq_len` next tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmItem {
    /// Token ids.
    pub inputs: Vec<u32>,
    /// The token after each input.
    pub targets: Vec<u32>,
    /// Which window of its row this is (0 = the row's first).
    pub step: usize,
}

/// A token stream cut into `batch_size` contiguous rows, read `seq_len` tokens at a time.
///
/// Item `i` is window `i / batch_size` of row `i % batch_size`, so a data loader with batch
/// size `batch_size` and **no shuffling** yields batches whose row `r` continues row `r` of the
/// previous batch — what a model carrying its recurrent state across batches needs.
#[derive(Clone, Debug)]
pub struct BpttDataset {
    tokens: TokenStream,
    batch_size: usize,
    seq_len: usize,
    row_len: usize,
    steps: usize,
}

impl BpttDataset {
    /// Cuts `tokens` into `batch_size` rows as the paper's LM code does (the RAdam repository's
    /// `LargeDataset`): of the `n − 1` transitions, the largest multiple of
    /// `batch_size · seq_len` is kept and split into `batch_size` contiguous rows, each read in
    /// `seq_len`-token windows; the tail is dropped.
    pub fn new(tokens: TokenStream, batch_size: usize, seq_len: usize) -> Result<Self> {
        if batch_size == 0 || seq_len == 0 {
            return Err(DataError::Invalid(
                "batch size and sequence length must be positive".to_string(),
            ));
        }
        let steps = tokens.len().saturating_sub(1) / batch_size.saturating_mul(seq_len);
        let row_len = steps * seq_len;
        if steps == 0 {
            return Err(DataError::Invalid(format!(
                "a stream of {} tokens is too short for {batch_size} rows of {seq_len}-token windows",
                tokens.len()
            )));
        }
        Ok(Self {
            tokens,
            batch_size,
            seq_len,
            row_len,
            steps,
        })
    }

    /// The batch size the data loader must use.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per pass.
    pub fn batches(&self) -> usize {
        self.steps
    }
}

impl Dataset<LmItem> for BpttDataset {
    fn get(&self, index: usize) -> Option<LmItem> {
        if index >= self.len() {
            return None;
        }
        let (step, row) = (index / self.batch_size, index % self.batch_size);
        let start = row * self.row_len + step * self.seq_len;
        let mut window = vec![0u32; self.seq_len + 1];
        self.tokens.read(start, &mut window);
        Some(LmItem {
            inputs: window[..self.seq_len].to_vec(),
            targets: window[1..].to_vec(),
            step,
        })
    }

    fn len(&self) -> usize {
        self.steps * self.batch_size
    }
}

/// Stacks [`LmItem`]s into an [`LmBatch`] on any backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct LmBatcher;

impl<B: Backend> Batcher<B, LmItem, LmBatch<B>> for LmBatcher {
    fn batch(&self, items: Vec<LmItem>, device: &B::Device) -> LmBatch<B> {
        let rows = items.len();
        let seq_len = items.first().map_or(0, |item| item.inputs.len());
        let inputs: Vec<i64> = items
            .iter()
            .flat_map(|item| item.inputs.iter().map(|&t| t as i64))
            .collect();
        let targets: Vec<i64> = items
            .iter()
            .flat_map(|item| item.targets.iter().map(|&t| t as i64))
            .collect();
        LmBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [rows, seq_len]), device),
            targets: Tensor::from_data(TensorData::new(targets, [rows, seq_len]), device),
            starts_stream: items.first().is_some_and(|item| item.step == 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn word_level_corpus_with_eos_and_unknown_words() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.txt", "a b a\nb a c\n");
        write(dir.path(), "valid.txt", "a z\n");
        write(dir.path(), "test.txt", "c\n");
        let vocab_file = dir.path().join("vocab.txt");
        let options = VocabularyOptions {
            min_count: 2,
            file: Some(vocab_file.clone()),
        };
        let corpus = LmCorpus::word_level(dir.path(), &options).unwrap();
        // <unk> 0, <eos> 1, a 2 (3×), b 3 (2×); c is seen once.
        assert_eq!(corpus.vocab.len(), 4);
        let ids = |stream: &TokenStream| {
            let mut out = vec![0; stream.len()];
            stream.read(0, &mut out);
            out
        };
        assert_eq!(ids(&corpus.train), vec![2, 3, 2, 1, 3, 2, 0, 1]);
        assert_eq!(ids(&corpus.valid), vec![2, 0, 1]);
        assert_eq!(ids(&corpus.test), vec![0, 1]);
        // The saved vocabulary is reused by the next run, whatever min_count says.
        assert!(vocab_file.is_file());
        let again = LmCorpus::word_level(
            dir.path(),
            &VocabularyOptions {
                min_count: 1,
                ..options
            },
        )
        .unwrap();
        assert_eq!(again.vocab, corpus.vocab);
    }

    #[test]
    fn word_level_errors_name_what_is_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.txt", "a\n");
        let error = LmCorpus::word_level(dir.path(), &VocabularyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("(missing: valid.txt, test.txt)"), "{error}");
        write(dir.path(), "valid.txt", "");
        write(dir.path(), "test.txt", "a\n");
        let error = LmCorpus::word_level(dir.path(), &VocabularyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("valid.txt is empty"), "{error}");
        write(dir.path(), "train.txt", "\n\n");
        let error = LmCorpus::word_level(dir.path(), &VocabularyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("train.txt is empty: the training split has no word"),
            "{error}"
        );
    }

    #[test]
    fn one_billion_word_streams_shards_into_cached_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("training-monolingual.tokenized.shuffled");
        let heldout = dir.path().join("heldout-monolingual.tokenized.shuffled");
        std::fs::create_dir_all(&train).unwrap();
        std::fs::create_dir_all(&heldout).unwrap();
        write(&train, "news.en-00001-of-00100", "the cat\nthe dog\n");
        write(&train, "news.en-00002-of-00100", "the end\n");
        write(&heldout, "news.en.heldout-00000-of-00050", "the cat sat\n");
        write(&heldout, "news.en.heldout-00001-of-00050", "a dog\n");
        let cache = dir.path().join("cache");
        let corpus = LmCorpus::one_billion_word(dir.path(), &cache, 1).unwrap();
        assert!(matches!(corpus.train, TokenStream::File(_)));
        // the(3) <eos>(3)… ids: <unk> 0, <eos> 1, the 2, cat 3, dog 4, end 5 (ties alphabetical).
        let read = |s: &TokenStream| {
            let mut out = vec![0; s.len()];
            s.read(0, &mut out);
            out
        };
        assert_eq!(read(&corpus.train), vec![2, 3, 1, 2, 4, 1, 2, 5, 1]);
        assert_eq!(read(&corpus.test), vec![2, 3, 0, 1]);
        assert_eq!(read(&corpus.valid), vec![0, 4, 1]);
        let folders: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(folders.len(), 1, "{folders:?}");
        let keyed = &folders[0];
        assert!(keyed.join("vocab-min1.txt").is_file() && keyed.join("train-min1.u32").is_file());
        // Second load reuses the cache: a token file changed by hand is read as it is.
        let token_file = keyed.join("train-min1.u32");
        let mut bytes = std::fs::read(&token_file).unwrap();
        bytes[0] = 5;
        std::fs::write(&token_file, &bytes).unwrap();
        let again = LmCorpus::one_billion_word(dir.path(), &cache, 1).unwrap();
        assert_eq!(read(&again.train)[0], 5);
        // Changed data is never served from the old cache.
        write(&train, "news.en-00002-of-00100", "the end of the cat\n");
        let changed = LmCorpus::one_billion_word(dir.path(), &cache, 1).unwrap();
        assert_eq!(
            read(&changed.train),
            vec![2, 3, 1, 2, 4, 1, 2, 5, 6, 2, 3, 1]
        );
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
        // No partial file is left behind.
        for folder in std::fs::read_dir(&cache).unwrap() {
            for file in std::fs::read_dir(folder.unwrap().path()).unwrap() {
                let name = file.unwrap().file_name().into_string().unwrap();
                assert!(!name.starts_with(".partial-"), "{name}");
            }
        }
        let error = LmCorpus::one_billion_word(dir.path().join("nowhere"), &cache, 1)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("training-monolingual.tokenized.shuffled/news.en-*"),
            "{error}"
        );
    }

    #[test]
    fn bptt_windows_are_those_of_the_papers_lm_code() {
        // tools/data_parity_reference.py: LargeDataset.open_next of the RAdam repository's LM
        // code, for three (tokens, streams, window) shapes.
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/data_parity.json")).unwrap();
        let ids = |value: &serde_json::Value| -> Vec<u32> {
            let values = value.as_array().unwrap();
            values.iter().map(|x| x.as_u64().unwrap() as u32).collect()
        };
        let cases = reference["lm"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let batch = case["batch"].as_u64().unwrap() as usize;
            let length = case["length"].as_u64().unwrap() as usize;
            let tokens = TokenStream::Memory(Arc::new(ids(&case["tokens"])));
            let data = BpttDataset::new(tokens, batch, length).unwrap();
            let (inputs, targets) = (
                case["inputs"].as_array().unwrap(),
                case["targets"].as_array().unwrap(),
            );
            assert_eq!(data.batches(), inputs.len(), "{batch} x {length}");
            for (window, (inputs, targets)) in inputs.iter().zip(targets).enumerate() {
                for row in 0..batch {
                    let item = data.get(window * batch + row).unwrap();
                    assert_eq!(item.inputs, ids(&inputs[row]), "window {window}, row {row}");
                    assert_eq!(
                        item.targets,
                        ids(&targets[row]),
                        "window {window}, row {row}"
                    );
                    assert_eq!(item.step, window);
                }
            }
        }
    }

    #[test]
    fn bptt_batches_line_up_inputs_targets_and_rows() {
        let tokens = TokenStream::Memory(Arc::new((0..103).collect()));
        let data = BpttDataset::new(tokens, 4, 5).unwrap();
        // 102 usable transitions → rows of 25 tokens → 5 windows of 5 per row.
        assert_eq!((data.len(), data.batches()), (20, 5));
        let batch: Vec<LmItem> = (4..8).map(|i| data.get(i).unwrap()).collect();
        assert_eq!(batch[0].inputs, vec![5, 6, 7, 8, 9]);
        assert_eq!(batch[0].targets, vec![6, 7, 8, 9, 10]);
        assert_eq!(batch[3].inputs, vec![80, 81, 82, 83, 84]);
        // Row 3 of batch 2 continues row 3 of batch 1.
        assert_eq!(data.get(11).unwrap().inputs[0], 85);
        let tensors: LmBatch<NdArray> = LmBatcher.batch(batch, &Default::default());
        assert!(!tensors.starts_stream);
        assert_eq!(tensors.inputs.dims(), [4, 5]);
        let first: LmBatch<NdArray> = LmBatcher.batch(
            (0..4).map(|i| data.get(i).unwrap()).collect(),
            &Default::default(),
        );
        assert!(first.starts_stream);
        let error = BpttDataset::new(TokenStream::Memory(Arc::new(vec![1, 2, 3])), 4, 5)
            .unwrap_err()
            .to_string();
        assert!(error.contains("too short"), "{error}");
    }
}
