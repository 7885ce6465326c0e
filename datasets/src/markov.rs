//! A built-in language-modelling corpus sampled from a first-order Markov source over
//! pseudo-words, whose entropy rate — and so the best perplexity any model can reach — is known
//! exactly.
//!
//! Each word (and the end-of-sentence token) is followed by one of a few successors, drawn from
//! a Zipf law over the vocabulary (frequent words exist, as in real text) with random weights.
//! The entropy rate is `H = Σ_s π(s)·H(P(·|s))` with `π` the stationary distribution; the
//! optimal perplexity is `exp(H)`.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use crate::error::{DataError, Result};
use crate::lm::LmCorpus;
use crate::tokens::TokenStream;
use crate::vocab::{EOS, WordCounter};

/// The source: `words` pseudo-words plus `<eos>` (state 0), each with `successors` next tokens.
#[derive(Clone, Debug)]
pub struct MarkovSource {
    words: Vec<String>,
    /// `transitions[s]`: (next state, probability), probabilities summing to 1.
    transitions: Vec<Vec<(usize, f64)>>,
}

fn pseudo_word(index: usize) -> String {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let mut n = index;
    let mut word = String::new();
    loop {
        word.push(CONSONANTS[n % CONSONANTS.len()] as char);
        n /= CONSONANTS.len();
        word.push(VOWELS[n % VOWELS.len()] as char);
        n /= VOWELS.len();
        if n == 0 {
            break;
        }
        n -= 1;
    }
    word
}

impl MarkovSource {
    /// A source over `words` pseudo-words where every state has `successors` possible next
    /// tokens; one in `mean_sentence_length` transitions ends the sentence on average.
    pub fn new(
        words: usize,
        successors: usize,
        mean_sentence_length: f64,
        seed: u64,
    ) -> Result<Self> {
        if words < 2 || successors == 0 || successors > words || mean_sentence_length <= 1.0 {
            return Err(DataError::Invalid(format!(
                "a Markov source needs ≥ 2 words, 1..=words successors and a mean sentence length > 1; got {words}, \
                 {successors}, {mean_sentence_length}"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Zipf(1) over the words: weight 1/(rank + 1).
        let zipf: Vec<f64> = (0..words).map(|rank| 1.0 / (rank + 1) as f64).collect();
        let zipf_total: f64 = zipf.iter().sum();
        let gamma = Gamma::<f64>::new(0.7, 1.0).expect("valid Gamma parameters");
        let end_probability = 1.0 / mean_sentence_length;
        let mut transitions = Vec::with_capacity(words + 1);
        for state in 0..=words {
            let mut chosen: Vec<usize> = Vec::with_capacity(successors);
            while chosen.len() < successors {
                let mut u = rng.random::<f64>() * zipf_total;
                let mut word = 0;
                while word + 1 < words && u >= zipf[word] {
                    u -= zipf[word];
                    word += 1;
                }
                if !chosen.contains(&(word + 1)) {
                    chosen.push(word + 1);
                }
            }
            // Dirichlet(0.7) weights over the successors.
            let weights: Vec<f64> = chosen
                .iter()
                .map(|_| gamma.sample(&mut rng).max(1e-12))
                .collect();
            let total: f64 = weights.iter().sum();
            let keep = if state == 0 {
                1.0
            } else {
                1.0 - end_probability
            };
            let mut row: Vec<(usize, f64)> = chosen
                .into_iter()
                .zip(weights)
                .map(|(s, w)| (s, keep * w / total))
                .collect();
            if state != 0 {
                row.push((0, end_probability));
            }
            transitions.push(row);
        }
        let mut names = vec![EOS.to_string()];
        names.extend((0..words).map(pseudo_word));
        Ok(Self {
            words: names,
            transitions,
        })
    }

    /// The stationary distribution, by power iteration.
    fn stationary(&self) -> Vec<f64> {
        let n = self.transitions.len();
        let mut pi = vec![1.0 / n as f64; n];
        for _ in 0..10_000 {
            let mut next = vec![0.0; n];
            for (state, row) in self.transitions.iter().enumerate() {
                for &(to, p) in row {
                    next[to] += pi[state] * p;
                }
            }
            let change: f64 = next.iter().zip(&pi).map(|(a, b)| (a - b).abs()).sum();
            pi = next;
            if change < 1e-14 {
                break;
            }
        }
        pi
    }

    /// The entropy rate in nats per token.
    pub fn entropy_rate(&self) -> f64 {
        let pi = self.stationary();
        self.transitions
            .iter()
            .zip(&pi)
            .map(|(row, weight)| {
                weight
                    * row
                        .iter()
                        .map(|&(_, p)| if p > 0.0 { -p * p.ln() } else { 0.0 })
                        .sum::<f64>()
            })
            .sum()
    }

    /// `exp(entropy rate)`: the perplexity of the true model, the best any model can reach.
    pub fn optimal_perplexity(&self) -> f64 {
        self.entropy_rate().exp()
    }

    /// Samples `lines` sentences (each ended by the transition into `<eos>`), continuing the
    /// chain from `state`.
    fn sample_lines(&self, rng: &mut ChaCha8Rng, tokens: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = Vec::new();
        let mut state = 0;
        let mut produced = 0;
        while produced < tokens || !line.is_empty() {
            let u: f64 = rng.random();
            let row = &self.transitions[state];
            let mut acc = 0.0;
            let mut next = row.last().expect("non-empty row").0;
            for &(to, p) in row {
                acc += p;
                if u < acc {
                    next = to;
                    break;
                }
            }
            produced += 1;
            if next == 0 {
                lines.push(line.join(" "));
                line.clear();
            } else {
                line.push(self.words[next].as_str());
            }
            state = next;
        }
        lines
    }

    /// Samples a corpus of about `train` / `valid` / `test` tokens (`<eos>` included) and
    /// tokenises it like any text corpus (vocabulary from the training split).
    pub fn corpus(&self, train: usize, valid: usize, test: usize, seed: u64) -> Result<LmCorpus> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let splits = [train, valid, test].map(|tokens| self.sample_lines(&mut rng, tokens));
        let mut counter = WordCounter::default();
        for line in &splits[0] {
            counter.add_line(line);
        }
        let vocab = counter.build(1);
        let [train, valid, test] = splits.map(|lines| {
            let mut ids = Vec::new();
            for line in &lines {
                vocab.encode_line(line, &mut ids);
            }
            TokenStream::Memory(Arc::new(ids))
        });
        Ok(LmCorpus {
            vocab,
            train,
            valid,
            test,
            optimal_perplexity: Some(self.optimal_perplexity()),
            files: Vec::new(),
        })
    }

    /// Writes the corpus as `train.txt`, `valid.txt`, `test.txt` text files in `dir` (the
    /// Penn Treebank layout), for trying the file loaders.
    pub fn write_text(&self, dir: &std::path::Path, tokens: [usize; 3], seed: u64) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (name, count) in ["train.txt", "valid.txt", "test.txt"]
            .into_iter()
            .zip(tokens)
        {
            let mut text = self.sample_lines(&mut rng, count).join("\n");
            text.push('\n');
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))?;
        }
        Ok(())
    }
}

impl LmCorpus {
    /// The built-in corpus: 2000 pseudo-words, 8 successors per word, sentences of 12 words on
    /// average; `train` tokens for training and a tenth of that for validation and test.
    pub fn builtin(train: usize, seed: u64) -> Result<Self> {
        MarkovSource::new(2000, 8, 12.0, seed)?.corpus(
            train,
            train / 10,
            train / 10,
            seed.wrapping_add(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_words_are_distinct() {
        let words: std::collections::HashSet<String> = (0..5000).map(pseudo_word).collect();
        assert_eq!(words.len(), 5000);
    }

    #[test]
    fn entropy_of_a_uniform_source_is_known() {
        // Every state goes to each of 4 words with equal weight... up to the Dirichlet draw, so
        // check the bounds instead: 0 < H ≤ ln(successors + 1).
        let source = MarkovSource::new(50, 4, 5.0, 1).unwrap();
        let h = source.entropy_rate();
        assert!(h > 0.0 && h <= 5.0_f64.ln() + 1e-9, "entropy rate {h}");
        let pi = source.stationary();
        assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_empirical_cross_entropy_of_the_true_model_matches_the_entropy_rate() {
        let source = MarkovSource::new(200, 6, 10.0, 3).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let lines = source.sample_lines(&mut rng, 300_000);
        // Score the sample under the true transition probabilities.
        let index: std::collections::HashMap<&str, usize> = source
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i))
            .collect();
        let (mut nll, mut count, mut state) = (0.0, 0usize, 0usize);
        for line in &lines {
            for next in line
                .split_whitespace()
                .map(|w| index[w])
                .chain(std::iter::once(0))
            {
                let p = source.transitions[state]
                    .iter()
                    .find(|(to, _)| *to == next)
                    .unwrap()
                    .1;
                nll -= p.ln();
                count += 1;
                state = next;
            }
        }
        let empirical = nll / count as f64;
        let exact = source.entropy_rate();
        assert!(
            (empirical - exact).abs() < 0.02 * exact,
            "empirical {empirical} vs exact {exact}"
        );
    }

    #[test]
    fn builtin_corpus_is_deterministic_and_sized() {
        let a = LmCorpus::builtin(20_000, 5).unwrap();
        let b = LmCorpus::builtin(20_000, 5).unwrap();
        assert_eq!(a.vocab, b.vocab);
        assert!(a.train.len() >= 20_000 && a.train.len() < 20_200);
        assert!(a.valid.len() >= 2_000);
        let ppl = a.optimal_perplexity.unwrap();
        assert!(ppl > 2.0 && ppl < 9.0, "optimal perplexity {ppl}");
        let unigram_entropy: f64 = {
            let total: u64 = (0..a.vocab.len() as u32)
                .map(|id| a.vocab.count(id).unwrap())
                .sum();
            (0..a.vocab.len() as u32)
                .map(|id| a.vocab.count(id).unwrap() as f64 / total as f64)
                .filter(|p| *p > 0.0)
                .map(|p| -p * p.ln())
                .sum()
        };
        // Context matters: a unigram model is far worse than the optimum.
        assert!(
            unigram_entropy.exp() > 5.0 * ppl,
            "unigram {} vs optimal {ppl}",
            unigram_entropy.exp()
        );
    }

    #[test]
    fn text_files_load_back_through_the_word_level_loader() {
        let dir = tempfile::tempdir().unwrap();
        let source = MarkovSource::new(100, 4, 8.0, 2).unwrap();
        source.write_text(dir.path(), [5_000, 500, 500], 4).unwrap();
        let corpus =
            LmCorpus::word_level(dir.path(), &crate::lm::VocabularyOptions::default()).unwrap();
        assert!(corpus.train.len() >= 5_000);
        assert!(corpus.vocab.len() > 50);
    }
}
