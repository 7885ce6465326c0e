//! Parallel corpora for translation: line-aligned files in the IWSLT'14 layout (`train.de` /
//! `train.en`, `valid.*`, `test.*`), a joint BPE vocabulary (Hugging Face `tokenizers`), and
//! batches built by token budget, like fairseq's `--max-tokens`.

use std::path::{Path, PathBuf};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use tokenizers::decoders::bpe::BPEDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{AddedToken, Tokenizer};

use crate::batch::TranslationBatch;
use crate::bpe_learner;
use crate::error::{DataError, Result};
use crate::files::{Fingerprint, replace_atomic};
use crate::text::read_lines;

/// Padding id.
pub const PAD_ID: u32 = 0;
/// Beginning-of-sentence id (first decoder input).
pub const BOS_ID: u32 = 1;
/// End-of-sentence id.
pub const EOS_ID: u32 = 2;
/// Unknown-piece id.
pub const UNK_ID: u32 = 3;
const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];
const END_OF_WORD: &str = "</w>";

/// Sentence pairs as text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParallelText {
    /// `(source, target)` sentences.
    pub pairs: Vec<(String, String)>,
}

/// The three splits of a parallel corpus.
#[derive(Clone, Debug)]
pub struct ParallelCorpus {
    /// Training pairs.
    pub train: ParallelText,
    /// Validation pairs.
    pub valid: ParallelText,
    /// Test pairs.
    pub test: ParallelText,
}

impl ParallelText {
    /// The two files of one split in `dir`: `{split}.{source}` and `{split}.{target}`.
    pub fn paths(dir: &Path, split: &str, source: &str, target: &str) -> [PathBuf; 2] {
        [
            dir.join(format!("{split}.{source}")),
            dir.join(format!("{split}.{target}")),
        ]
    }

    /// Reads `{split}.{source}` and `{split}.{target}` from `dir`; the files must have the same
    /// number of lines.
    pub fn load(dir: &Path, split: &str, source: &str, target: &str) -> Result<Self> {
        let [source_path, target_path] = Self::paths(dir, split, source, target);
        let absent: Vec<String> = [&source_path, &target_path]
            .iter()
            .filter(|path| !path.is_file())
            .map(|path| {
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if !absent.is_empty() {
            return Err(DataError::MissingFiles {
                dir: dir.to_path_buf(),
                expected: format!(
                    "{split}.{source} and {split}.{target} (missing: {})",
                    absent.join(", ")
                ),
            });
        }
        let sources = read_lines(&source_path)?;
        let targets = read_lines(&target_path)?;
        if sources.len() != targets.len() {
            return Err(DataError::LineCountMismatch {
                source_path,
                source_lines: sources.len(),
                target_path,
                target_lines: targets.len(),
            });
        }
        if sources.is_empty() {
            return Err(DataError::Empty {
                path: source_path,
                what: "a split needs at least one sentence pair".to_string(),
            });
        }
        Ok(Self {
            pairs: sources.into_iter().zip(targets).collect(),
        })
    }
}

impl ParallelCorpus {
    /// The six files [`load`](Self::load) reads from `dir`.
    pub fn files(dir: &Path, source: &str, target: &str) -> Vec<PathBuf> {
        ["train", "valid", "test"]
            .iter()
            .flat_map(|split| ParallelText::paths(dir, split, source, target))
            .collect()
    }

    /// Reads the IWSLT'14 layout: `train`, `valid` and `test` files for both languages, e.g.
    /// `source = "de"`, `target = "en"`.
    pub fn load(dir: impl AsRef<Path>, source: &str, target: &str) -> Result<Self> {
        let dir = dir.as_ref();
        Ok(Self {
            train: ParallelText::load(dir, "train", source, target)?,
            valid: ParallelText::load(dir, "valid", source, target)?,
            test: ParallelText::load(dir, "test", source, target)?,
        })
    }
}

/// A joint byte-pair-encoding vocabulary over both languages.
///
/// Ids 0–3 are `<pad>`, `<s>`, `</s>`, `<unk>`. Input text is split on whitespace (it is expected
/// to be tokenised already, as IWSLT'14 is); decoding joins the pieces back into words.
#[derive(Clone)]
pub struct JointBpe {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for JointBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JointBpe({} pieces)", self.vocab_size())
    }
}

fn tokenizer_error(error: impl std::fmt::Display) -> DataError {
    DataError::Tokenizer(error.to_string())
}

impl JointBpe {
    /// Learns merges from both sides of `text` until the vocabulary has `vocab_size` pieces
    /// (special tokens and the alphabet included). The same text always gives the same
    /// vocabulary (ties between equally frequent pairs are broken by sorted order, not by
    /// hash order as Hugging Face's trainer does), so a run re-learning it on resume sees
    /// the pieces it was trained with.
    pub fn train(text: &ParallelText, vocab_size: usize) -> Result<Self> {
        let sentences = text
            .pairs
            .iter()
            .flat_map(|(s, t)| [s.as_str(), t.as_str()]);
        let learned = bpe_learner::learn(sentences, vocab_size, &SPECIAL_TOKENS, END_OF_WORD);
        let vocab: Vocab = learned
            .pieces
            .into_iter()
            .enumerate()
            .map(|(id, piece)| (piece, id as u32))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(vocab, learned.merges)
            .unk_token(SPECIAL_TOKENS[UNK_ID as usize].to_string())
            .end_of_word_suffix(END_OF_WORD.to_string())
            .build()
            .map_err(tokenizer_error)?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        tokenizer.with_decoder(Some(BPEDecoder::new(END_OF_WORD.to_string())));
        let special: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        tokenizer.add_special_tokens(&special);
        let bpe = Self { tokenizer };
        for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
            if bpe.tokenizer.token_to_id(token) != Some(id as u32) {
                return Err(DataError::Tokenizer(format!(
                    "special token {token} did not get id {id}"
                )));
            }
        }
        Ok(bpe)
    }

    /// Saves the tokenizer as JSON (Hugging Face format).
    pub fn save(&self, path: &Path) -> Result<()> {
        // Atomically: an interrupted save leaves no half-written tokenizer to be trusted later.
        replace_atomic(path, |partial| {
            self.tokenizer
                .save(partial, false)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .map_err(|e| DataError::io(path, e))
    }

    /// Loads a tokenizer saved by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(DataError::MissingFiles {
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                expected: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            });
        }
        let tokenizer = Tokenizer::from_file(path).map_err(|error| {
            DataError::Tokenizer(format!(
                "{} is not a tokenizer ({error}); remove it to learn the BPE again",
                path.display()
            ))
        })?;
        Ok(Self { tokenizer })
    }

    /// Loads `path` if it exists, otherwise trains on `text` and saves to `path`.
    pub fn load_or_train(path: &Path, text: &ParallelText, vocab_size: usize) -> Result<Self> {
        if path.is_file() {
            return Self::load(path);
        }
        let bpe = Self::train(text, vocab_size)?;
        bpe.save(path)?;
        Ok(bpe)
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The piece ids of a sentence (no special tokens).
    pub fn encode(&self, sentence: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(sentence, false)
            .map_err(tokenizer_error)?
            .get_ids()
            .to_vec())
    }

    /// The sentence for piece ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(tokenizer_error)
    }

    /// Encodes every pair.
    pub fn encode_pairs(&self, text: &ParallelText) -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
        text.pairs
            .iter()
            .map(|(s, t)| Ok((self.encode(s)?, self.encode(t)?)))
            .collect()
    }
}

/// One batch worth of encoded sentence pairs (the item type of [`TokenBudgetDataset`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairBatch {
    /// `(source ids, target ids)`, without special tokens.
    pub pairs: Vec<(Vec<u32>, Vec<u32>)>,
}

/// Sentence pairs grouped into batches of similar length whose padded size stays within a
/// token budget, as fairseq (2019) groups them for `--max-tokens`: pairs in the order of
/// `LanguagePairDataset.ordered_indices` (by source length, then target length; fairseq breaks
/// the remaining ties at random, this keeps the corpus order), cut greedily as
/// `data_utils.batch_by_size` does, so that a batch of `n` pairs padded to `l` tokens (the
/// longer side, end-of-sentence included) has `n·l ≤ max_tokens`. Each item is a whole batch:
/// load it with a data loader of batch size 1 (shuffling then shuffles the order of batches).
#[derive(Clone, Debug)]
pub struct TokenBudgetDataset {
    batches: Vec<PairBatch>,
    /// Pairs left out because one side is longer than the maximum length.
    pub too_long: usize,
    /// Pairs left out because one side is empty.
    pub empty: usize,
}

impl TokenBudgetDataset {
    /// Groups `pairs` (sorted by length, so each batch holds similar lengths). Pairs with a side
    /// longer than `max_length` tokens are left out and counted in `too_long`; pairs with an
    /// empty side, in `empty`.
    pub fn new(
        pairs: Vec<(Vec<u32>, Vec<u32>)>,
        max_tokens: usize,
        max_length: usize,
    ) -> Result<Self> {
        if max_length == 0 || max_tokens < max_length + 1 {
            return Err(DataError::Invalid(format!(
                "max_tokens ({max_tokens}) must hold at least one sentence of max_length ({max_length}) plus its \
                 end-of-sentence token"
            )));
        }
        let (mut empty, mut too_long) = (0, 0);
        let mut pairs: Vec<(Vec<u32>, Vec<u32>)> = pairs
            .into_iter()
            .filter(|(s, t)| {
                if s.is_empty() || t.is_empty() {
                    empty += 1;
                    false
                } else if s.len() > max_length || t.len() > max_length {
                    too_long += 1;
                    false
                } else {
                    true
                }
            })
            .collect();
        // A stable sort by (source, target) length: fairseq's two stable sorts, by target length
        // and then by source length.
        pairs.sort_by_key(|(s, t)| (s.len(), t.len()));
        let mut batches = Vec::new();
        let mut current: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
        let mut longest = 0;
        for pair in pairs {
            let length = pair.0.len().max(pair.1.len()) + 1;
            let padded = (current.len() + 1) * longest.max(length);
            if !current.is_empty() && padded > max_tokens {
                batches.push(PairBatch {
                    pairs: std::mem::take(&mut current),
                });
                longest = 0;
            }
            longest = longest.max(length);
            current.push(pair);
        }
        if !current.is_empty() {
            batches.push(PairBatch { pairs: current });
        }
        Ok(Self {
            batches,
            too_long,
            empty,
        })
    }

    /// Total sentence pairs.
    pub fn pairs(&self) -> usize {
        self.batches.iter().map(|b| b.pairs.len()).sum()
    }
}

impl Dataset<PairBatch> for TokenBudgetDataset {
    fn get(&self, index: usize) -> Option<PairBatch> {
        self.batches.get(index).cloned()
    }

    fn len(&self) -> usize {
        self.batches.len()
    }
}

/// Pads a [`PairBatch`] (or several, concatenated) into a [`TranslationBatch`]: the source gets
/// `</s>` appended, the decoder input is `<s> y`, the decoder output `y </s>`, all padded on the
/// right. fairseq's `collate` (2019) pads sources on the left and starts the decoder input with
/// `</s>`; neither changes a model's output where positions count the tokens that are not
/// padding (fairseq's sinusoids) and the start token has an embedding of its own (see the
/// test against fairseq's batches).
#[derive(Clone, Copy, Debug, Default)]
pub struct TranslationBatcher;

impl TranslationBatcher {
    fn pad(rows: &[Vec<u32>], width: usize) -> (Vec<i64>, Vec<bool>) {
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut padding = Vec::with_capacity(rows.len() * width);
        for row in rows {
            ids.extend(row.iter().map(|&t| t as i64));
            ids.extend(std::iter::repeat_n(PAD_ID as i64, width - row.len()));
            padding.extend(std::iter::repeat_n(false, row.len()));
            padding.extend(std::iter::repeat_n(true, width - row.len()));
        }
        (ids, padding)
    }
}

impl<B: Backend> Batcher<B, PairBatch, TranslationBatch<B>> for TranslationBatcher {
    fn batch(&self, items: Vec<PairBatch>, device: &B::Device) -> TranslationBatch<B> {
        let pairs: Vec<&(Vec<u32>, Vec<u32>)> = items.iter().flat_map(|item| &item.pairs).collect();
        let rows = pairs.len();
        let with_eos = |ids: &Vec<u32>| ids.iter().copied().chain([EOS_ID]).collect::<Vec<u32>>();
        let sources: Vec<Vec<u32>> = pairs.iter().map(|(s, _)| with_eos(s)).collect();
        let inputs: Vec<Vec<u32>> = pairs
            .iter()
            .map(|(_, t)| [BOS_ID].into_iter().chain(t.iter().copied()).collect())
            .collect();
        let outputs: Vec<Vec<u32>> = pairs.iter().map(|(_, t)| with_eos(t)).collect();
        let source_len = sources.iter().map(Vec::len).max().unwrap_or(1);
        let target_len = outputs.iter().map(Vec::len).max().unwrap_or(1);
        let (source, source_padding) = Self::pad(&sources, source_len);
        let (target_input, target_padding) = Self::pad(&inputs, target_len);
        let (target_output, _) = Self::pad(&outputs, target_len);
        let ints = |values: Vec<i64>, width: usize| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(values, [rows, width]), device)
        };
        let bools = |values: Vec<bool>, width: usize| {
            Tensor::<B, 2, Bool>::from_data(TensorData::new(values, [rows, width]), device)
        };
        TranslationBatch {
            source: ints(source, source_len),
            source_padding: bools(source_padding, source_len),
            target_input: ints(target_input, target_len),
            target_output: ints(target_output, target_len),
            target_padding: bools(target_padding, target_len),
            target_tokens: outputs.iter().map(Vec::len).sum(),
        }
    }
}

/// Where a corpus directory's tokenizer is kept by default: named by the vocabulary size and a
/// fingerprint of the training text it is learned from, so a changed corpus never gets the BPE
/// of the old one.
pub fn default_bpe_path(dir: &Path, vocab_size: usize, train: &ParallelText) -> PathBuf {
    let mut fingerprint = Fingerprint::new().with(&(vocab_size as u64).to_le_bytes());
    for (source, target) in &train.pairs {
        fingerprint = fingerprint.with(source.as_bytes()).with(target.as_bytes());
    }
    dir.join(format!("bpe-joint-{vocab_size}-{}.json", fingerprint.hex()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn sample() -> ParallelText {
        ParallelText {
            pairs: vec![
                ("das haus ist klein".into(), "the house is small".into()),
                ("das haus ist gross".into(), "the house is big".into()),
                ("der hund ist klein".into(), "the dog is small".into()),
                ("ein kleines haus".into(), "a small house".into()),
            ],
        }
    }

    #[test]
    fn loads_the_iwslt_layout() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "valid", "test"] {
            write(
                dir.path(),
                &format!("{split}.de"),
                "hallo welt\nguten tag\n",
            );
            write(
                dir.path(),
                &format!("{split}.en"),
                "hello world\ngood day\n",
            );
        }
        let corpus = ParallelCorpus::load(dir.path(), "de", "en").unwrap();
        assert_eq!(
            corpus.train.pairs[1],
            ("guten tag".to_string(), "good day".to_string())
        );
        assert_eq!(corpus.test.pairs.len(), 2);
    }

    #[test]
    fn bad_parallel_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.de", "a\nb\nc\n");
        let error = ParallelText::load(dir.path(), "train", "de", "en")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("expected train.de and train.en (missing: train.en)"),
            "{error}"
        );
        write(dir.path(), "train.en", "x\ny\n");
        let error = ParallelText::load(dir.path(), "train", "de", "en")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("train.de has 3 lines") && error.contains("train.en has 2"),
            "{error}"
        );
        write(dir.path(), "train.de", "");
        write(dir.path(), "train.en", "");
        let error = ParallelText::load(dir.path(), "train", "de", "en")
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
        write(dir.path(), "train.de", "ok\n");
        std::fs::write(dir.path().join("train.en"), b"\xc3\x28\n").unwrap();
        let error = ParallelText::load(dir.path(), "train", "de", "en")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("train.en is not valid UTF-8 (line 1"),
            "{error}"
        );
    }

    #[test]
    fn joint_bpe_round_trips_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample();
        let bpe = JointBpe::train(&text, 60).unwrap();
        assert!(bpe.vocab_size() <= 60);
        let ids = bpe.encode("das kleine haus").unwrap();
        assert!(ids.iter().all(|&id| id > UNK_ID));
        assert_eq!(bpe.decode(&ids).unwrap(), "das kleine haus");
        // Special ids decode to nothing.
        let mut with_special = vec![BOS_ID];
        with_special.extend(&ids);
        with_special.push(EOS_ID);
        assert_eq!(bpe.decode(&with_special).unwrap(), "das kleine haus");
        let path = dir.path().join("bpe.json");
        bpe.save(&path).unwrap();
        let loaded = JointBpe::load(&path).unwrap();
        assert_eq!(
            loaded.encode("the big dog").unwrap(),
            bpe.encode("the big dog").unwrap()
        );
        let reused = JointBpe::load_or_train(&path, &ParallelText::default(), 10).unwrap();
        assert_eq!(reused.vocab_size(), bpe.vocab_size());
        assert!(
            JointBpe::load(&dir.path().join("none.json"))
                .unwrap_err()
                .to_string()
                .contains("none.json")
        );
    }

    #[test]
    fn the_same_corpus_always_gives_the_same_bpe() {
        let corpus =
            crate::synthetic_translation::SyntheticTranslation::new(0).corpus(2000, 100, 0);
        let first = JointBpe::train(&corpus.train, 600).unwrap();
        let second = JointBpe::train(&corpus.train, 600).unwrap();
        assert_eq!(first.vocab_size(), 600);
        assert_eq!(
            first.tokenizer.get_vocab(true),
            second.tokenizer.get_vocab(true)
        );
        for (source, target) in &corpus.test.pairs {
            for sentence in [source, target] {
                let ids = first.encode(sentence).unwrap();
                assert_eq!(ids, second.encode(sentence).unwrap(), "{sentence}");
                assert_eq!(&first.decode(&ids).unwrap(), sentence);
            }
        }
    }

    #[test]
    fn the_default_bpe_path_follows_the_training_text() {
        let dir = Path::new("corpus");
        let path = default_bpe_path(dir, 600, &sample());
        assert_eq!(path, default_bpe_path(dir, 600, &sample()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("bpe-joint-600-") && name.ends_with(".json"),
            "{name}"
        );
        let mut changed = sample();
        changed.pairs[0].1.push('s');
        assert_ne!(path, default_bpe_path(dir, 600, &changed));
        assert_ne!(path, default_bpe_path(dir, 601, &sample()));
    }

    #[test]
    fn token_budget_batches_respect_the_budget_and_keep_every_pair() {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..200)
            .map(|i| (vec![5; 1 + i % 17], vec![6; 1 + (i * 7) % 23]))
            .chain([
                (vec![5; 40], vec![6; 3]),
                (vec![], vec![6; 3]),
                (vec![5], vec![]),
            ])
            .collect();
        let data = TokenBudgetDataset::new(pairs, 100, 30).unwrap();
        assert_eq!((data.too_long, data.empty), (1, 2));
        assert_eq!(data.pairs(), 200);
        for index in 0..data.len() {
            let batch = data.get(index).unwrap();
            let longest = batch
                .pairs
                .iter()
                .map(|(s, t)| s.len().max(t.len()) + 1)
                .max()
                .unwrap();
            assert!(
                batch.pairs.len() * longest <= 100,
                "batch {index}: {} × {longest}",
                batch.pairs.len()
            );
        }
        assert!(TokenBudgetDataset::new(vec![], 10, 30).is_err());
    }

    #[test]
    fn batcher_pads_and_masks() {
        let item = PairBatch {
            pairs: vec![(vec![10, 11, 12], vec![20]), (vec![13], vec![21, 22])],
        };
        let batch: TranslationBatch<NdArray> =
            TranslationBatcher.batch(vec![item], &Default::default());
        let ints = |t: Tensor<NdArray, 2, Int>| t.into_data().to_vec::<i64>().unwrap();
        assert_eq!(ints(batch.source), vec![10, 11, 12, 2, 13, 2, 0, 0]);
        assert_eq!(ints(batch.target_input), vec![1, 20, 0, 1, 21, 22]);
        assert_eq!(ints(batch.target_output), vec![20, 2, 0, 21, 22, 2]);
        let padding: Vec<bool> = batch.target_padding.into_data().to_vec().unwrap();
        assert_eq!(padding, vec![false, false, true, false, false, false]);
        let padding: Vec<bool> = batch.source_padding.into_data().to_vec().unwrap();
        assert_eq!(
            padding,
            vec![false, false, false, false, false, false, true, true]
        );
        assert_eq!(batch.target_tokens, 5);
    }

    /// fairseq's batches (tools/data_parity_reference.py: `ordered_indices`, `batch_by_size` and
    /// `collate` of 2019) for two sets of pairs: the same pairs in each batch, the same widths,
    /// the same tokens in each row up to where the padding goes (sources on the left there), the
    /// decoder input's start token ours, and the same target token count. The order of rows
    /// within a batch is not compared: fairseq's descending sort by source length leaves ties
    /// unspecified, and the loss does not depend on it.
    #[test]
    fn batches_are_fairseqs() {
        type Pair = (Vec<u32>, Vec<u32>);
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/data_parity.json")).unwrap();
        let ids = |value: &serde_json::Value| -> Vec<i64> {
            let values = value.as_array().unwrap();
            values.iter().map(|x| x.as_i64().unwrap()).collect()
        };
        let rows = |value: &serde_json::Value| -> Vec<Vec<i64>> {
            value.as_array().unwrap().iter().map(ids).collect()
        };
        let without_padding = |row: &[i64]| -> Vec<i64> {
            row.iter()
                .copied()
                .filter(|&id| id != PAD_ID as i64)
                .collect()
        };
        let cases = reference["nmt"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let pairs: Vec<Pair> = case["pairs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let side = |i: usize| ids(&pair[i]).iter().map(|&id| id as u32).collect();
                    (side(0), side(1))
                })
                .collect();
            let max_tokens = case["max_tokens"].as_u64().unwrap() as usize;
            let data = TokenBudgetDataset::new(pairs.clone(), max_tokens, 8).unwrap();
            let expected = case["batches"].as_array().unwrap();
            assert_eq!(data.len(), expected.len(), "batches at {max_tokens} tokens");
            for (index, expected) in expected.iter().enumerate() {
                let batch = data.get(index).unwrap();
                let mut ours: Vec<&Pair> = batch.pairs.iter().collect();
                let mut theirs: Vec<&Pair> = ids(&expected["ids"])
                    .iter()
                    .map(|&i| &pairs[i as usize])
                    .collect();
                ours.sort();
                theirs.sort();
                assert_eq!(ours, theirs, "pairs of batch {index}");

                let tensors: TranslationBatch<NdArray> =
                    TranslationBatcher.batch(vec![batch.clone()], &Default::default());
                let table = |t: Tensor<NdArray, 2, Int>| -> Vec<Vec<i64>> {
                    let [_, width] = t.dims();
                    let values = t.into_data().to_vec::<i64>().unwrap();
                    values.chunks(width).map(<[i64]>::to_vec).collect()
                };
                let (source, input, output) = (
                    table(tensors.source),
                    table(tensors.target_input),
                    table(tensors.target_output),
                );
                let (fairseq_source, fairseq_input, fairseq_output) = (
                    rows(&expected["src_tokens"]),
                    rows(&expected["prev_output_tokens"]),
                    rows(&expected["target"]),
                );
                assert_eq!(source[0].len(), fairseq_source[0].len(), "source width");
                assert_eq!(output[0].len(), fairseq_output[0].len(), "target width");
                for (row, pair) in batch.pairs.iter().enumerate() {
                    let theirs = (0..fairseq_source.len())
                        .find(|&i| {
                            let source = &fairseq_source[i];
                            *source == fairseq_source_row(pair, source.len())
                                && fairseq_output[i][..pair.1.len()]
                                    .iter()
                                    .copied()
                                    .eq(pair.1.iter().map(|&id| id as i64))
                        })
                        .expect("the pair's row in fairseq's batch");
                    assert_eq!(
                        without_padding(&source[row]),
                        without_padding(&fairseq_source[theirs])
                    );
                    assert_eq!(source[row].last() == Some(&(PAD_ID as i64)), {
                        // Right-padded here exactly when fairseq left-pads the row.
                        fairseq_source[theirs][0] == PAD_ID as i64
                    });
                    assert_eq!(output[row], fairseq_output[theirs]);
                    assert_eq!(input[row][0], BOS_ID as i64);
                    assert_eq!(fairseq_input[theirs][0], EOS_ID as i64);
                    assert_eq!(input[row][1..], fairseq_input[theirs][1..]);
                }
                assert_eq!(
                    tensors.target_tokens as u64,
                    expected["ntokens"].as_u64().unwrap()
                );
            }
        }

        /// fairseq's source row of `pair` at `width`: padding on the left, then `x </s>`.
        fn fairseq_source_row(pair: &Pair, width: usize) -> Vec<i64> {
            let mut row = vec![PAD_ID as i64; width - pair.0.len() - 1];
            row.extend(pair.0.iter().map(|&id| id as i64));
            row.push(EOS_ID as i64);
            row
        }
    }
}
