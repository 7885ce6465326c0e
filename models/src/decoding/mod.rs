//! Greedy decoding and beam search for [`TransformerNmt`], batched over sentences on the
//! [incremental decoder](crate::layers::incremental): each step reads one token per hypothesis, and
//! when beam search moves hypotheses to other rows the cached keys and values are gathered by
//! parent row, never recomputed. Sentences whose search has ended leave the batch.

#[cfg(test)]
mod reference;

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::layers::incremental::{DecoderState, IncrementalDecoder};
use crate::models::transformer::TransformerNmt;

/// Options of [`TransformerNmt::beam_search`].
#[derive(Config, Debug)]
pub struct BeamSearchConfig {
    /// Hypotheses kept per sentence. 1 is greedy decoding.
    #[config(default = 5)]
    pub beam_size: usize,
    /// Finished hypotheses are ranked by `score / length^length_penalty` (fairseq's `--lenpen`):
    /// 1 averages the log-probability per token, 0 ranks by total log-probability.
    #[config(default = 1.0)]
    pub length_penalty: f64,
    /// Longest output, in tokens (end-of-sentence included).
    #[config(default = 200)]
    pub max_length: usize,
}

/// The special token ids decoding needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sentence: the first decoder input.
    pub bos: usize,
    /// End of sentence: generating it finishes a hypothesis.
    pub eos: usize,
    /// Padding.
    pub pad: usize,
}

/// A sentence's best hypothesis.
#[derive(Clone, Debug, PartialEq)]
pub struct Translation {
    /// Its tokens, without BOS and EOS.
    pub tokens: Vec<usize>,
    /// The score beam search ranked it by: log-probability / length^length_penalty (−∞ when the
    /// search found no hypothesis).
    pub score: f64,
}

impl Translation {
    /// The best-scored of a sentence's finished `(BOS + tokens, score)` hypotheses (the last of
    /// equals); no tokens and a score of −∞ if there are none.
    pub(crate) fn best(finished: &[(Vec<i64>, f64)], eos: usize) -> Self {
        finished.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(
            Translation {
                tokens: Vec::new(),
                score: f64::NEG_INFINITY,
            },
            |(tokens, score)| Translation {
                tokens: strip(tokens, eos),
                score: *score,
            },
        )
    }
}

/// The rows `[rows.len(), width]` as a tensor.
pub(crate) fn int_tensor<B: Backend>(rows: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// `indices` as a 1-d index tensor.
fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let length = indices.len();
    let indices: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(indices, [length]), device)
}

/// Index of the largest value; the lowest index wins ties.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &value) in values.iter().enumerate() {
        if value > values[best] {
            best = i;
        }
    }
    best
}

/// The generated tokens of a prefix: without the leading BOS and the final EOS, if any.
pub(crate) fn strip(prefix: &[i64], eos: usize) -> Vec<usize> {
    prefix[1..]
        .iter()
        .map(|&t| t as usize)
        .take_while(|&t| t != eos)
        .collect()
}

/// A live hypothesis: BOS and the tokens so far, and its total log-probability.
pub(crate) struct Hypothesis {
    pub(crate) tokens: Vec<i64>,
    pub(crate) score: f64,
}

/// The 2k best continuations `(score, row, token)` of the live hypotheses in `rows`, best
/// first, from the next-token log-probabilities `values` (`vocab` per row): enough for k
/// continuing hypotheses even if k of them end the sentence. Ties go to the lower row, then the
/// lower token (as greedy decoding's argmax).
pub(crate) fn ranked_candidates(
    live: &[Hypothesis],
    rows: std::ops::Range<usize>,
    values: &[f32],
    vocab: usize,
    k: usize,
) -> Vec<(f64, usize, usize)> {
    let mut candidates: Vec<(f64, usize, usize)> = rows
        .filter(|&row| live[row].score.is_finite())
        .flat_map(|row| {
            let base = live[row].score;
            let values = &values[row * vocab..(row + 1) * vocab];
            (0..vocab).map(move |v| (base + values[v] as f64, row, v))
        })
        .collect();
    let by_rank = |a: &(f64, usize, usize), b: &(f64, usize, usize)| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    let keep = (2 * k).min(candidates.len());
    if keep < candidates.len() {
        candidates.select_nth_unstable_by(keep - 1, by_rank);
        candidates.truncate(keep);
    }
    candidates.sort_by(by_rank);
    candidates
}

impl Hypothesis {
    /// The k rows of each sentence before the first step: only beam 0 is alive (the others score
    /// −∞), so the k best continuations of the first step are distinct.
    pub(crate) fn first_beams(sentences: usize, k: usize, bos: usize) -> Vec<Self> {
        (0..sentences * k)
            .map(|row| Hypothesis {
                tokens: vec![bos as i64],
                score: if row % k == 0 { 0.0 } else { f64::NEG_INFINITY },
            })
            .collect()
    }
}

/// What a batched beam search did, beyond its translations (for tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SearchStats {
    /// Steps after which hypotheses moved to other rows while no sentence left the batch (the
    /// cache was gathered).
    pub(crate) reordered_steps: usize,
}

/// The model, its incremental decoder and the decoder's state during one decoding call.
struct Decoding<'a, B: Backend> {
    model: &'a TransformerNmt<B>,
    decoder: IncrementalDecoder<B>,
    state: DecoderState<B>,
    device: B::Device,
}

impl<B: Backend> Decoding<'_, B> {
    /// Log-probabilities `[rows × vocab]` (row-major, and the vocabulary size) of the token after
    /// each row's `newest` token.
    fn next(&mut self, newest: Vec<i64>) -> (Vec<f32>, usize) {
        let position = self.state.length();
        let tokens = int_tensor(
            &newest.into_iter().map(|t| vec![t]).collect::<Vec<_>>(),
            &self.device,
        );
        let x = self.model.embed_target_at(tokens, position);
        let decoded = self.decoder.step(x, &mut self.state);
        let log_probs = self.model.log_probs_of(decoded);
        let vocab = log_probs.dims()[1];
        let values = log_probs
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("float log-probabilities");
        (values, vocab)
    }
}

impl<B: Backend> TransformerNmt<B> {
    /// Encodes `source` and starts decoding `copies` hypotheses per sentence.
    fn start_decoding(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        copies: usize,
    ) -> Decoding<'_, B> {
        let device = source.device();
        let sentences = source.dims()[0];
        let memory = self.encode(source, source_padding.clone());
        let (memory, padding) = if copies == 1 {
            (memory, source_padding)
        } else {
            let rows: Vec<usize> = (0..sentences)
                .flat_map(|s| std::iter::repeat_n(s, copies))
                .collect();
            let rows = index_tensor::<B>(&rows, &device);
            (
                memory.select(0, rows.clone()),
                source_padding.int().select(0, rows).bool(),
            )
        };
        let decoder = self.incremental_decoder();
        let state = decoder.start(memory, padding);
        Decoding {
            model: self,
            decoder,
            state,
            device,
        }
    }

    /// The longest output decoding may produce under `max_length`.
    fn decoding_limit(&self, max_length: usize) -> usize {
        max_length.min(self.max_positions().saturating_sub(1))
    }

    /// Greedy decoding: the most probable next token until EOS or `max_length` tokens.
    /// Returns each sentence's tokens without BOS and EOS.
    pub fn greedy_decode(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        special: SpecialTokens,
        max_length: usize,
    ) -> Vec<Vec<usize>> {
        let rows = source.dims()[0];
        let mut decoding = self.start_decoding(source, source_padding, 1);
        let mut prefixes = vec![vec![special.bos as i64]; rows];
        let mut finished = vec![false; rows];
        for _ in 0..self.decoding_limit(max_length) {
            let newest = prefixes.iter().map(|p| p[p.len() - 1]).collect();
            let (values, vocab) = decoding.next(newest);
            for (row, prefix) in prefixes.iter_mut().enumerate() {
                if finished[row] {
                    prefix.push(special.pad as i64);
                    continue;
                }
                let token = argmax(&values[row * vocab..(row + 1) * vocab]);
                prefix.push(token as i64);
                finished[row] = token == special.eos;
            }
            if finished.iter().all(|&f| f) {
                break;
            }
        }
        prefixes
            .iter()
            .map(|prefix| strip(prefix, special.eos))
            .collect()
    }

    /// Beam search. With `beam_size = 1` it returns exactly what [`greedy_decode`](Self::greedy_decode)
    /// returns. Returns each sentence's best hypothesis without BOS and EOS.
    pub fn beam_search(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        special: SpecialTokens,
        config: &BeamSearchConfig,
    ) -> Vec<Vec<usize>> {
        self.beam_search_scored(source, source_padding, special, config)
            .into_iter()
            .map(|translation| translation.tokens)
            .collect()
    }

    /// Beam search, with each sentence's best hypothesis and its score.
    pub fn beam_search_scored(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        special: SpecialTokens,
        config: &BeamSearchConfig,
    ) -> Vec<Translation> {
        self.batched_beam_search(source, source_padding, special, config)
            .0
    }

    /// The beam search over all sentences at once (sentences × beam rows), and what it did.
    pub(crate) fn batched_beam_search(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        special: SpecialTokens,
        config: &BeamSearchConfig,
    ) -> (Vec<Translation>, SearchStats) {
        assert!(config.beam_size >= 1, "beam_size must be at least 1");
        let sentences = source.dims()[0];
        let k = config.beam_size;
        let mut decoding = self.start_decoding(source, source_padding, k);
        let normalise =
            |score: f64, length: usize| score / (length as f64).powf(config.length_penalty);

        // The sentences still searched, in row order (k rows each), and their live hypotheses.
        let mut active: Vec<usize> = (0..sentences).collect();
        let mut live = Hypothesis::first_beams(sentences, k, special.bos);
        let mut finished: Vec<Vec<(Vec<i64>, f64)>> = vec![Vec::new(); sentences];
        let mut stats = SearchStats::default();

        for step in 0..self.decoding_limit(config.max_length) {
            let newest = live.iter().map(|h| h.tokens[h.tokens.len() - 1]).collect();
            let (values, vocab) = decoding.next(newest);

            let mut next = Vec::with_capacity(live.len());
            let mut parents = Vec::with_capacity(live.len());
            let mut still_active = Vec::with_capacity(active.len());
            for (slot, &s) in active.iter().enumerate() {
                let rows = slot * k..(slot + 1) * k;
                let candidates = ranked_candidates(&live, rows.clone(), &values, vocab, k);

                let extend = |row: usize, token: usize| {
                    let mut tokens = live[row].tokens.clone();
                    tokens.push(token as i64);
                    tokens
                };
                let mut beams = Vec::with_capacity(k);
                for (rank, &(score, row, token)) in candidates.iter().enumerate() {
                    if token == special.eos {
                        // An EOS counts only among the k best candidates (fairseq's rule).
                        if rank < k {
                            finished[s].push((extend(row, token), normalise(score, step + 1)));
                        }
                    } else if beams.len() < k {
                        beams.push((
                            Hypothesis {
                                tokens: extend(row, token),
                                score,
                            },
                            row,
                        ));
                    }
                    if beams.len() == k {
                        break;
                    }
                }
                // A sentence with k finished hypotheses is done (fairseq's early stop).
                if finished[s].len() >= k {
                    continue;
                }
                // Fill the sentence's rows with dead hypotheses if the vocabulary ran out.
                while beams.len() < k {
                    beams.push((
                        Hypothesis {
                            tokens: extend(rows.start, special.pad),
                            score: f64::NEG_INFINITY,
                        },
                        rows.start,
                    ));
                }
                for (hypothesis, parent) in beams {
                    next.push(hypothesis);
                    parents.push(parent);
                }
                still_active.push(s);
            }
            let shrunk = still_active.len() < active.len();
            active = still_active;
            live = next;
            if active.is_empty() {
                break;
            }
            if shrunk {
                decoding
                    .state
                    .select_rows(index_tensor(&parents, &decoding.device), true);
            } else if parents
                .iter()
                .enumerate()
                .any(|(row, &parent)| row != parent)
            {
                decoding
                    .state
                    .select_rows(index_tensor(&parents, &decoding.device), false);
                stats.reordered_steps += 1;
            }
        }

        // Sentences still searched at the length limit: their live hypotheses count as finished.
        for (slot, &s) in active.iter().enumerate() {
            for hypothesis in &live[slot * k..(slot + 1) * k] {
                if hypothesis.score.is_finite() {
                    let length = hypothesis.tokens.len() - 1;
                    finished[s].push((
                        hypothesis.tokens.clone(),
                        normalise(hypothesis.score, length),
                    ));
                }
            }
        }
        let translations = finished
            .iter()
            .map(|hypotheses| Translation::best(hypotheses, special.eos))
            .collect();
        (translations, stats)
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::TranslationBatch;
    use burn::module::AutodiffModule;

    use super::*;
    use crate::decoding::reference::reference_beam_search;
    use crate::models::transformer::test_data::{PAD, ids, padding, tiny_model};
    use crate::models::transformer::{TransformerArchitecture, TransformerNmtConfig};
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close, trained};
    use burn::tensor::activation::log_softmax;

    /// Beginning of sentence of the translation tests.
    const BOS: usize = 1;
    /// End of sentence of the translation tests.
    const EOS: usize = 2;
    /// The translation tests' special tokens.
    const SPECIAL: SpecialTokens = SpecialTokens {
        bos: BOS,
        eos: EOS,
        pad: PAD,
    };

    /// `count` sentences of 2–7 tokens from 3..vocab (a fixed pseudo-random sequence), each with
    /// its reversal as the translation, as a padded batch.
    fn reversal_batch(count: usize, vocab: u64) -> TranslationBatch<TestAutodiffBackend> {
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let sentences: Vec<Vec<i64>> = (0..count)
            .map(|_| {
                (0..2 + next(6))
                    .map(|_| (3 + next(vocab - 3)) as i64)
                    .collect()
            })
            .collect();
        let width = 8;
        let pad = |mut row: Vec<i64>| {
            row.resize(width, PAD as i64);
            row
        };
        let source = ids(sentences
            .iter()
            .map(|s| pad([s.clone(), vec![EOS as i64]].concat()))
            .collect());
        let reversed = |s: &Vec<i64>| s.iter().rev().copied().collect::<Vec<_>>();
        let target_input = ids(sentences
            .iter()
            .map(|s| pad([vec![BOS as i64], reversed(s)].concat()))
            .collect());
        let target_output = ids(sentences
            .iter()
            .map(|s| pad([reversed(s), vec![EOS as i64]].concat()))
            .collect());
        TranslationBatch {
            source_padding: padding(&source),
            source,
            target_padding: padding(&target_input),
            target_input,
            target_output,
            target_tokens: sentences.iter().map(|s| s.len() + 1).sum(),
        }
    }

    /// The batched search on the incremental decoder returns what the reference (one cache
    /// rebuild per reorder) returns — the same hypotheses, scores within 1e-5 — on an untrained
    /// and a briefly trained model, over 40 sentences, with beams that reorder.
    #[test]
    fn batched_beam_search_equals_the_reference_search() {
        let vocab = 16;
        let batch = reversal_batch(40, vocab as u64);
        let untrained = tiny_model::<TestAutodiffBackend>(vocab);
        let trained = trained(untrained.clone(), 40, 5e-3, |model| {
            model.forward_translation(batch.clone()).loss
        });
        let source = batch.source.inner();
        let source_padding = batch.source_padding.inner();
        for (name, model) in [
            ("untrained", untrained.valid()),
            ("trained", trained.valid()),
        ] {
            for beam in [3, 5] {
                let config = BeamSearchConfig::new()
                    .with_beam_size(beam)
                    .with_max_length(10);
                let (found, stats) = model.batched_beam_search(
                    source.clone(),
                    source_padding.clone(),
                    SPECIAL,
                    &config,
                );
                let expected = reference_beam_search::<TestBackend>(
                    &model,
                    source.clone(),
                    source_padding.clone(),
                    SPECIAL,
                    &config,
                );
                assert!(stats.reordered_steps > 0, "{name}, beam {beam}: {stats:?}");
                assert_eq!(found.len(), 40);
                for (sentence, (found, expected)) in found.iter().zip(&expected).enumerate() {
                    assert_eq!(
                        found.tokens, expected.tokens,
                        "{name}, beam {beam}, sentence {sentence}"
                    );
                    assert!(
                        (found.score - expected.score).abs() < 1e-5,
                        "{name}, beam {beam}, sentence {sentence}: {} vs {}",
                        found.score,
                        expected.score
                    );
                }
            }
        }
    }

    #[test]
    fn a_beam_of_one_is_greedy_decoding() {
        let model = tiny_model::<TestBackend>(12);
        let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2], vec![8, 9, 2, 0], vec![3, 2, 0, 0]]);
        let greedy = model.greedy_decode(source.clone(), padding(&source), SPECIAL, 12);
        let beam_1 = model.beam_search(
            source.clone(),
            padding(&source),
            SPECIAL,
            &BeamSearchConfig::new()
                .with_beam_size(1)
                .with_max_length(12),
        );
        assert_eq!(beam_1, greedy);
    }

    #[test]
    fn a_wide_enough_beam_finds_the_most_probable_output() {
        // Vocabulary of 5 and at most 3 output tokens: 125 prefixes, so a beam of 125 is exhaustive.
        let model = tiny_model::<TestBackend>(5);
        let source = ids::<TestBackend>(vec![vec![3, 4, 2], vec![4, 2, 0]]);
        let best = model.beam_search(
            source.clone(),
            padding(&source),
            SPECIAL,
            &BeamSearchConfig::new()
                .with_beam_size(125)
                .with_max_length(3)
                .with_length_penalty(0.0),
        );
        for (sentence, found) in best.iter().enumerate() {
            let mut candidates: Vec<Vec<usize>> = vec![vec![]];
            for a in 0..5 {
                candidates.push(vec![a]);
                for b in 0..5 {
                    candidates.push(vec![a, b]);
                    for c in 0..5 {
                        candidates.push(vec![a, b, c]);
                    }
                }
            }
            let score =
                |tokens: &Vec<usize>| sequence_log_prob(&model, &source, sentence, tokens, 3);
            let optimum = candidates
                .iter()
                .filter(|tokens| !tokens.contains(&EOS))
                .map(score)
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                (score(found) - optimum).abs() < 1e-4,
                "sentence {sentence}: beam found {found:?} with {}, the optimum is {optimum}",
                score(found)
            );
        }
    }

    /// log p(tokens + EOS | source) under teacher forcing (EOS dropped when the hypothesis hit
    /// the length limit without it).
    fn sequence_log_prob(
        model: &TransformerNmt<TestBackend>,
        source: &Tensor<TestBackend, 2, Int>,
        sentence: usize,
        tokens: &[usize],
        max_length: usize,
    ) -> f64 {
        let width = source.dims()[1];
        let source = source.clone().slice([sentence..sentence + 1, 0..width]);
        let mut output: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        if output.len() < max_length {
            output.push(EOS as i64);
        }
        let mut input = vec![BOS as i64];
        input.extend(&output[..output.len() - 1]);
        let input = ids::<TestBackend>(vec![input]);
        let log_p = log_softmax(
            model.forward(
                source.clone(),
                padding(&source),
                input.clone(),
                padding(&input),
            ),
            2,
        );
        let vocab = log_p.dims()[2];
        let values: Vec<f32> = log_p.into_data().to_vec().unwrap();
        output
            .iter()
            .enumerate()
            .map(|(t, &token)| values[t * vocab + token as usize] as f64)
            .sum()
    }

    /// Decodes two rows one position at a time, swaps them (sentence, memory and cached
    /// positions) after the third, and compares every step with the teacher-forced forward pass
    /// of the sentence and prefix the row then holds — pre-norm and post-norm, and fairseq's
    /// architecture (its ReLU and its sinusoids).
    #[test]
    fn step_by_step_decoding_with_a_reorder_matches_the_full_forward_pass() {
        for (norm_first, architecture) in [
            (true, TransformerArchitecture::Burn),
            (false, TransformerArchitecture::Burn),
            (false, TransformerArchitecture::Fairseq),
        ] {
            let model = TransformerNmtConfig::tiny(20, PAD)
                .with_d_model(32)
                .with_d_ff(64)
                .with_dropout(0.0)
                .with_norm_first(norm_first)
                .with_architecture(architecture)
                .init::<TestBackend>(&Default::default());
            let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2], vec![8, 9, 2, 0]]);
            let prefixes = vec![vec![1i64, 5, 6, 7, 3], vec![1, 8, 9, 4, 4]];
            let target = ids::<TestBackend>(prefixes.clone());
            // The tokens of each position, one per sentence.
            let positions: Vec<[i64; 2]> =
                (0..5).map(|t| [prefixes[0][t], prefixes[1][t]]).collect();
            let full = log_softmax(
                model.forward(
                    source.clone(),
                    padding(&source),
                    target.clone(),
                    target.equal_elem(-1),
                ),
                2,
            );
            let decoder = model.incremental_decoder();
            let mut state = decoder.start(
                model.encode(source.clone(), padding(&source)),
                padding(&source),
            );
            // Which sentence (and prefix) each row holds.
            let mut order = [0, 1];
            for (t, tokens) in positions.iter().enumerate() {
                if t == 3 {
                    state.select_rows(ids::<TestBackend>(vec![vec![1, 0]]).reshape([2]), true);
                    order = [1, 0];
                }
                assert_eq!(state.length(), t);
                let newest = ids::<TestBackend>(order.iter().map(|&r| vec![tokens[r]]).collect());
                let decoded = decoder.step(model.embed_target_at(newest, t), &mut state);
                let step = model.log_probs_of(decoded);
                for (row, &held) in order.iter().enumerate() {
                    let expected = full
                        .clone()
                        .slice([held..held + 1, t..t + 1, 0..20])
                        .reshape([1, 20]);
                    let got = step.clone().slice([row..row + 1, 0..20]);
                    assert_tensors_close(got, expected, 1e-5);
                }
            }
        }
    }
}
