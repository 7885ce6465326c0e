//! Corpus BLEU (Papineni et al., 2002): clipped 1–4-gram precisions summed over the corpus,
//! their geometric mean, and the brevity penalty — on detokenised text, tokenised the way
//! sacreBLEU's default `13a` tokeniser splits punctuation. No smoothing.

use std::collections::HashMap;

/// The BLEU score of a corpus, with its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Bleu {
    /// BLEU × 100.
    pub score: f64,
    /// The modified n-gram precisions p_1 … p_4 (0–1).
    pub precisions: [f64; 4],
    /// The brevity penalty (≤ 1).
    pub brevity_penalty: f64,
    /// Tokens in the hypotheses (c).
    pub hypothesis_length: usize,
    /// Tokens in the references (r).
    pub reference_length: usize,
}

impl std::fmt::Display for Bleu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p1, p2, p3, p4] = self.precisions.map(|p| 100.0 * p);
        write!(
            f,
            "BLEU = {:.2} {p1:.1}/{p2:.1}/{p3:.1}/{p4:.1} (BP = {:.3}, ratio = {:.3}, hyp_len = {}, ref_len = {})",
            self.score,
            self.brevity_penalty,
            self.hypothesis_length as f64 / self.reference_length.max(1) as f64,
            self.hypothesis_length,
            self.reference_length
        )
    }
}

/// Splits detokenised text into BLEU tokens: punctuation other than inside numbers (`3.5`,
/// `1,000`) and word-internal hyphens/apostrophes becomes a token of its own.
pub fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = |c: char| {
            (c == '.' || c == ',')
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        };
        let inside_word = |c: char| {
            (c == '-' || c == '\'')
                && i > 0
                && chars[i - 1].is_alphanumeric()
                && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
        };
        if c.is_whitespace() {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
        } else if c.is_ascii_punctuation() && !between_digits(c) && !inside_word(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            tokens.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// Corpus BLEU of `hypotheses` against one reference each.
///
/// # Panics
/// If the two slices differ in length.
pub fn corpus_bleu(hypotheses: &[String], references: &[String]) -> Bleu {
    assert_eq!(
        hypotheses.len(),
        references.len(),
        "BLEU needs one reference per hypothesis"
    );
    let mut matches = [0usize; 4];
    let mut totals = [0usize; 4];
    let (mut c, mut r) = (0, 0);
    for (hypothesis, reference) in hypotheses.iter().zip(references) {
        let (hyp, reference) = (tokenize(hypothesis), tokenize(reference));
        c += hyp.len();
        r += reference.len();
        for n in 1..=4 {
            let reference_counts = ngram_counts(&reference, n);
            for (gram, count) in ngram_counts(&hyp, n) {
                // Clipped counts: a hypothesis n-gram counts at most as often as in the reference.
                matches[n - 1] += count.min(reference_counts.get(gram).copied().unwrap_or(0));
            }
            totals[n - 1] += hyp.len().saturating_sub(n - 1);
        }
    }
    let precisions: [f64; 4] = std::array::from_fn(|i| matches[i] as f64 / totals[i].max(1) as f64);
    // BP = 1 if c > r, else exp(1 − r/c).
    let brevity_penalty = if c == 0 {
        0.0
    } else if c > r {
        1.0
    } else {
        (1.0 - r as f64 / c as f64).exp()
    };
    let score = if precisions.contains(&0.0) {
        0.0
    } else {
        let log_mean = precisions.iter().map(|p| p.ln()).sum::<f64>() / 4.0;
        100.0 * brevity_penalty * log_mean.exp()
    };
    Bleu {
        score,
        precisions,
        brevity_penalty,
        hypothesis_length: c,
        reference_length: r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bleu(pairs: &[(&str, &str)]) -> Bleu {
        let (h, r): (Vec<String>, Vec<String>) = pairs
            .iter()
            .map(|(h, r)| (h.to_string(), r.to_string()))
            .unzip();
        corpus_bleu(&h, &r)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn identical_text_scores_100() {
        let result = bleu(&[("The cat sat on the mat.", "The cat sat on the mat.")]);
        assert_close(result.score, 100.0);
        assert_eq!(result.hypothesis_length, 7);
    }

    #[test]
    fn hand_computed_precisions() {
        // p = 4/5, 3/4, 2/3, 1/2; BLEU = (0.2)^(1/4).
        let result = bleu(&[("a b c d e", "a b c d f")]);
        assert_eq!(result.precisions, [0.8, 0.75, 2.0 / 3.0, 0.5]);
        assert_close(result.score, 66.8740304976422);
    }

    #[test]
    fn counts_are_summed_over_the_corpus_not_averaged() {
        // p = 8/9, 6/7, 4/5, 2/3.
        let result = bleu(&[("a b c d", "a b c d"), ("a b c d e", "a b c d f")]);
        assert_close(result.score, 79.84079523098931);
    }

    #[test]
    fn short_hypotheses_pay_the_brevity_penalty() {
        let result = bleu(&[("a b c d", "a b c d e f")]);
        assert_close(result.brevity_penalty, (-0.5f64).exp());
        assert_close(result.score, 60.653065971263345);
    }

    #[test]
    fn repeated_words_are_clipped() {
        let result = bleu(&[("the the the the", "the cat")]);
        assert_close(result.precisions[0], 0.25);
        assert_eq!(result.score, 0.0);
    }

    #[test]
    fn punctuation_is_split_but_numbers_and_contractions_stay() {
        assert_eq!(
            tokenize("Hello, world! It's 3.5 well-known (1,000)."),
            [
                "Hello",
                ",",
                "world",
                "!",
                "It's",
                "3.5",
                "well-known",
                "(",
                "1,000",
                ")",
                "."
            ]
        );
    }
}
