//! A built-in translation task between two synthetic languages, so that BLEU means something
//! without downloading IWSLT'14.
//!
//! The source language is verb-final with grammatical gender: determiners and adjectives agree
//! with their noun's gender and number, and the verb agrees with the subject's number. The target
//! language is subject–verb–object with adjectives after the noun, marks the plural on nouns, and
//! marks the verb only for a singular subject. Every word has its own spelling in each language.
//! The target is a function of the source, so a perfect model reaches BLEU 100; getting there
//! needs the lexicon, the reordering and the agreement.
//!
//! ```text
//! source: di  mokaos     lunan   du     teba kirunt
//!         the big.m.pl  cat.pl  the.sg dog  see.pl
//! target: tho cats big see thy dog
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::translation::{ParallelCorpus, ParallelText};

struct Lexicon {
    /// `(source stem, target word, feminine)`.
    nouns: Vec<(String, String, bool)>,
    /// `(source stem, target word)`.
    adjectives: Vec<(String, String)>,
    /// `(source stem, target word)`.
    verbs: Vec<(String, String)>,
}

fn syllable_word(
    rng: &mut ChaCha8Rng,
    consonants: &[u8],
    vowels: &[u8],
    syllables: usize,
) -> String {
    (0..syllables)
        .flat_map(|_| {
            [
                consonants[rng.random_range(0..consonants.len())] as char,
                vowels[rng.random_range(0..vowels.len())] as char,
            ]
        })
        .collect()
}

impl Lexicon {
    fn new(seed: u64, nouns: usize, adjectives: usize, verbs: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut used = std::collections::HashSet::new();
        let mut unique = |rng: &mut ChaCha8Rng, consonants: &[u8], vowels: &[u8]| loop {
            let syllables = rng.random_range(2..=3);
            let word = syllable_word(rng, consonants, vowels, syllables);
            if used.insert(word.clone()) {
                break word;
            }
        };
        // Source words use one sound inventory, target words another. Stems are consonant–vowel
        // syllables, and inflections end in a consonant or add a second vowel, so an inflected
        // form never spells another stem.
        let (sc, sv) = (b"bdgklmnrstvz".as_slice(), b"aeiou".as_slice());
        let (tc, tv) = (b"cfhjpqwxy".as_slice(), b"aeiouy".as_slice());
        let nouns = (0..nouns)
            .map(|i| {
                (
                    unique(&mut rng, sc, sv),
                    unique(&mut rng, tc, tv),
                    i % 2 == 1,
                )
            })
            .collect();
        let adjectives = (0..adjectives)
            .map(|_| (unique(&mut rng, sc, sv), unique(&mut rng, tc, tv)))
            .collect();
        let verbs = (0..verbs)
            .map(|_| (unique(&mut rng, sc, sv), unique(&mut rng, tc, tv)))
            .collect();
        Self {
            nouns,
            adjectives,
            verbs,
        }
    }
}

struct NounPhrase {
    noun: usize,
    adjectives: Vec<usize>,
    plural: bool,
}

/// Generator of sentence pairs in the two synthetic languages.
pub struct SyntheticTranslation {
    lexicon: Lexicon,
}

impl Default for SyntheticTranslation {
    fn default() -> Self {
        Self::new(0)
    }
}

impl SyntheticTranslation {
    /// The language pair of `seed`: 120 nouns, 40 adjectives, 60 verbs.
    pub fn new(seed: u64) -> Self {
        Self {
            lexicon: Lexicon::new(seed, 120, 40, 60),
        }
    }

    fn noun_phrase(&self, rng: &mut ChaCha8Rng) -> NounPhrase {
        let count = [0, 0, 1, 1, 2][rng.random_range(0..5)];
        NounPhrase {
            noun: rng.random_range(0..self.lexicon.nouns.len()),
            adjectives: (0..count)
                .map(|_| rng.random_range(0..self.lexicon.adjectives.len()))
                .collect(),
            plural: rng.random_bool(0.4),
        }
    }

    fn source_np(&self, np: &NounPhrase) -> Vec<String> {
        let (stem, _, feminine) = &self.lexicon.nouns[np.noun];
        // Determiner and adjective endings agree in gender and number.
        let determiner = match (feminine, np.plural) {
            (false, false) => "du",
            (true, false) => "da",
            (_, true) => "di",
        };
        let ending = match (feminine, np.plural) {
            (false, false) => "o",
            (true, false) => "a",
            (false, true) => "os",
            (true, true) => "as",
        };
        let mut words = vec![determiner.to_string()];
        words.extend(
            np.adjectives
                .iter()
                .map(|&a| format!("{}{ending}", self.lexicon.adjectives[a].0)),
        );
        words.push(if np.plural {
            format!("{stem}n")
        } else {
            stem.clone()
        });
        words
    }

    fn target_np(&self, np: &NounPhrase) -> Vec<String> {
        let noun = &self.lexicon.nouns[np.noun].1;
        let mut words = vec![if np.plural { "tho" } else { "thy" }.to_string()];
        words.push(if np.plural {
            format!("{noun}s")
        } else {
            noun.clone()
        });
        words.extend(
            np.adjectives
                .iter()
                .map(|&a| self.lexicon.adjectives[a].1.clone()),
        );
        words
    }

    fn clause(&self, rng: &mut ChaCha8Rng) -> (Vec<String>, Vec<String>) {
        let subject = self.noun_phrase(rng);
        let object = self.noun_phrase(rng);
        let verb = rng.random_range(0..self.lexicon.verbs.len());
        let (source_verb, target_verb) = &self.lexicon.verbs[verb];
        // Source: S O V, the verb agreeing with the subject's number.
        let mut source = self.source_np(&subject);
        source.extend(self.source_np(&object));
        source.push(format!(
            "{source_verb}{}",
            if subject.plural { "nt" } else { "t" }
        ));
        // Target: S V O, the verb marked for a singular subject only.
        let mut target = self.target_np(&subject);
        target.push(if subject.plural {
            target_verb.clone()
        } else {
            format!("{target_verb}s")
        });
        target.extend(self.target_np(&object));
        (source, target)
    }

    /// One sentence pair: one clause, or two joined by a conjunction.
    pub fn pair(&self, rng: &mut ChaCha8Rng) -> (String, String) {
        let (mut source, mut target) = self.clause(rng);
        if rng.random_bool(0.3) {
            let (s, t) = self.clause(rng);
            source.push("unt".to_string());
            source.extend(s);
            target.push("ond".to_string());
            target.extend(t);
        }
        (source.join(" "), target.join(" "))
    }

    /// `count` sentence pairs drawn from `seed`.
    pub fn sample(&self, count: usize, seed: u64) -> ParallelText {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        ParallelText {
            pairs: (0..count).map(|_| self.pair(&mut rng)).collect(),
        }
    }

    /// A corpus of `train` training pairs and `held_out` validation and test pairs each.
    pub fn corpus(&self, train: usize, held_out: usize, seed: u64) -> ParallelCorpus {
        ParallelCorpus {
            train: self.sample(train, seed),
            valid: self.sample(held_out, seed.wrapping_add(1)),
            test: self.sample(held_out, seed.wrapping_add(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_pairs_with_reordering_and_agreement() {
        let language = SyntheticTranslation::new(3);
        let a = language.sample(50, 1);
        assert_eq!(a, SyntheticTranslation::new(3).sample(50, 1));
        for (source, target) in &a.pairs {
            // The source clause ends in a verb, the target's verb is its third word or later.
            let source_words: Vec<&str> = source.split(' ').collect();
            let target_words: Vec<&str> = target.split(' ').collect();
            assert!(source_words[0].starts_with('d'), "{source}");
            assert!(
                target_words[0] == "thy" || target_words[0] == "tho",
                "{target}"
            );
            // Number agreement: plural subjects have the plural determiner on both sides.
            assert_eq!(
                source_words[0] == "di",
                target_words[0] == "tho",
                "{source} / {target}"
            );
        }
        assert_ne!(a.pairs[0], a.pairs[1]);
    }

    #[test]
    fn the_target_is_a_function_of_the_source() {
        let language = SyntheticTranslation::new(0);
        let text = language.sample(3000, 7);
        let mut seen = std::collections::HashMap::new();
        for (source, target) in &text.pairs {
            if let Some(previous) = seen.insert(source.clone(), target.clone()) {
                assert_eq!(&previous, target, "{source} has two translations");
            }
        }
        let lengths: Vec<usize> = text
            .pairs
            .iter()
            .map(|(s, _)| s.split(' ').count())
            .collect();
        let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
        assert!((6.0..14.0).contains(&mean), "mean source length {mean}");
    }
}
