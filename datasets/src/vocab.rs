//! A word vocabulary built from training text, saved and loaded as a plain text file.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::files::write_atomic;
use crate::text::lines;

/// The unknown-word token.
pub const UNK: &str = "<unk>";
/// The end-of-sentence token appended to every line.
pub const EOS: &str = "<eos>";

/// Word ↔ id, ids sorted by decreasing training frequency (ties alphabetical) after the special
/// tokens `<unk>` (0) and `<eos>` (1), so that frequent words get small ids — the order an
/// adaptive softmax needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    words: Vec<String>,
    counts: Vec<u64>,
    ids: HashMap<String, u32>,
}

/// Counts words (whitespace-separated) of lines.
#[derive(Clone, Debug, Default)]
pub struct WordCounter {
    counts: HashMap<String, u64>,
    lines: u64,
}

impl WordCounter {
    /// Counts the words of one line, plus its end-of-sentence token.
    pub fn add_line(&mut self, line: &str) {
        for word in line.split_whitespace() {
            match self.counts.get_mut(word) {
                Some(count) => *count += 1,
                None => {
                    self.counts.insert(word.to_string(), 1);
                }
            }
        }
        self.lines += 1;
    }

    /// Counts every line of a text file.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        for line in lines(path)? {
            self.add_line(&line?);
        }
        Ok(())
    }

    /// The vocabulary of words seen at least `min_count` times; the others become `<unk>`
    /// (the paper maps words seen ≤ 3 times to `<unk>` on One Billion Word: `min_count = 4`).
    pub fn build(&self, min_count: u64) -> Vocabulary {
        let mut kept: Vec<(&String, u64)> = self
            .counts
            .iter()
            .filter(|(word, count)| {
                **count >= min_count && word.as_str() != UNK && word.as_str() != EOS
            })
            .map(|(word, count)| (word, *count))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let unknown: u64 = self
            .counts
            .iter()
            .filter(|(word, count)| **count < min_count || word.as_str() == UNK)
            .map(|(_, count)| count)
            .sum();
        let mut words = vec![UNK.to_string(), EOS.to_string()];
        let mut counts = vec![
            unknown,
            self.lines + self.counts.get(EOS).copied().unwrap_or(0),
        ];
        for (word, count) in kept {
            words.push(word.clone());
            counts.push(count);
        }
        Vocabulary::from_parts(words, counts)
    }
}

impl Vocabulary {
    fn from_parts(words: Vec<String>, counts: Vec<u64>) -> Self {
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Self { words, counts, ids }
    }

    /// Number of words, special tokens included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the vocabulary holds only the special tokens.
    pub fn is_empty(&self) -> bool {
        self.words.len() <= 2
    }

    /// The id of `word`, or `<unk>`'s.
    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(0)
    }

    /// The id of `<eos>`.
    pub fn eos(&self) -> u32 {
        1
    }

    /// The id of `<unk>`.
    pub fn unk(&self) -> u32 {
        0
    }

    /// The word with id `id`.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// The training count of the word with id `id`.
    pub fn count(&self, id: u32) -> Option<u64> {
        self.counts.get(id as usize).copied()
    }

    /// Appends the ids of `line`'s words and `<eos>` to `out`.
    pub fn encode_line(&self, line: &str, out: &mut Vec<u32>) {
        out.extend(line.split_whitespace().map(|word| self.id(word)));
        out.push(self.eos());
    }

    /// Writes one `word<TAB>count` line per id (atomically: the file is whole or absent).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = String::new();
        for (word, count) in self.words.iter().zip(&self.counts) {
            text.push_str(&format!("{word}\t{count}\n"));
        }
        write_atomic(path, text.as_bytes()).map_err(|e| DataError::io(path, e))
    }

    /// Reads a file written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self> {
        let mut words = Vec::new();
        let mut counts = Vec::new();
        for (index, line) in lines(path)?.enumerate() {
            let line = line?;
            let parse = line
                .split_once('\t')
                .and_then(|(w, c)| Some((w.to_string(), c.parse::<u64>().ok()?)));
            let Some((word, count)) = parse else {
                return Err(DataError::Malformed {
                    path: path.to_path_buf(),
                    offset: 0,
                    problem: format!("line {} is not `word<TAB>count`: {line:?}", index + 1),
                });
            };
            words.push(word);
            counts.push(count);
        }
        if words.len() < 2 || words[0] != UNK || words[1] != EOS {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                offset: 0,
                problem: format!("a vocabulary file starts with {UNK} and {EOS}"),
            });
        }
        Ok(Self::from_parts(words, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> WordCounter {
        let mut counter = WordCounter::default();
        counter.add_line("the cat sat on the mat");
        counter.add_line("the dog sat");
        counter.add_line("a rare word");
        counter
    }

    #[test]
    fn frequent_words_first_rare_words_unknown() {
        let vocab = counter().build(2);
        assert_eq!(vocab.len(), 4);
        assert_eq!(vocab.word(0), Some(UNK));
        assert_eq!(vocab.word(1), Some(EOS));
        assert_eq!(vocab.word(2), Some("the"));
        assert_eq!(vocab.word(3), Some("sat"));
        assert_eq!(vocab.count(1), Some(3)); // one <eos> per line
        assert_eq!(vocab.count(0), Some(7)); // cat on mat dog a rare word
        let mut ids = Vec::new();
        vocab.encode_line("the cat sat", &mut ids);
        assert_eq!(ids, vec![2, 0, 3, 1]);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.txt");
        let vocab = counter().build(1);
        vocab.save(&path).unwrap();
        assert_eq!(Vocabulary::load(&path).unwrap(), vocab);
        std::fs::write(&path, "hello\n").unwrap();
        let error = Vocabulary::load(&path).unwrap_err().to_string();
        assert!(error.contains("line 1 is not `word<TAB>count`"), "{error}");
    }
}
