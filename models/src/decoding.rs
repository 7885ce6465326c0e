//! Greedy decoding and beam search for [`TransformerNmt`], on Burn's autoregressive decoder
//! cache.
//!
//! Burn's cache cannot be reordered, so when beam search keeps hypotheses from other parents
//! than the rows they occupy, the cache is rebuilt from the surviving prefixes (one decoder pass
//! over them); steps that keep every row's parent extend the cache by one position.

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::transformer::TransformerNmt;

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

fn int_tensor<B: Backend>(rows: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
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
fn strip(prefix: &[i64], eos: usize) -> Vec<usize> {
    prefix[1..]
        .iter()
        .map(|&t| t as usize)
        .take_while(|&t| t != eos)
        .collect()
}

struct Hypothesis {
    tokens: Vec<i64>,
    score: f64,
}

impl<B: Backend> TransformerNmt<B> {
    /// Greedy decoding: the most probable next token until EOS or `max_length` tokens.
    /// Returns each sentence's tokens without BOS and EOS.
    pub fn greedy_decode(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        special: SpecialTokens,
        max_length: usize,
    ) -> Vec<Vec<usize>> {
        let device = source.device();
        let rows = source.dims()[0];
        let memory = self.encode(source, source_padding.clone());
        let mut prefixes = vec![vec![special.bos as i64]; rows];
        let mut finished = vec![false; rows];
        let mut cache = self.new_cache();
        let max_length = max_length.min(self.max_positions().saturating_sub(1));
        for _ in 0..max_length {
            let log_probs = self.next_token_log_probs(
                int_tensor(&prefixes, &device),
                memory.clone(),
                source_padding.clone(),
                &mut cache,
            );
            let vocab = log_probs.dims()[1];
            let values: Vec<f32> = log_probs
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("float log-probabilities");
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
        assert!(config.beam_size >= 1, "beam_size must be at least 1");
        let device = source.device();
        let sentences = source.dims()[0];
        let k = config.beam_size;
        let memory = self.encode(source, source_padding.clone());
        let repeat: Vec<i64> = (0..sentences)
            .flat_map(|s| std::iter::repeat_n(s as i64, k))
            .collect();
        let repeat =
            Tensor::<B, 1, Int>::from_data(TensorData::new(repeat, [sentences * k]), &device);
        let memory = memory.select(0, repeat.clone());
        let memory_padding = source_padding.int().select(0, repeat).bool();

        // Only beam 0 of each sentence is alive at first, so its k best continuations are distinct.
        let mut live: Vec<Hypothesis> = (0..sentences * k)
            .map(|row| Hypothesis {
                tokens: vec![special.bos as i64],
                score: if row % k == 0 { 0.0 } else { f64::NEG_INFINITY },
            })
            .collect();
        let mut finished: Vec<Vec<(Vec<i64>, f64)>> = vec![Vec::new(); sentences];
        let mut done = vec![false; sentences];
        let mut cache = self.new_cache();
        let max_length = config
            .max_length
            .min(self.max_positions().saturating_sub(1));
        let normalise =
            |score: f64, length: usize| score / (length as f64).powf(config.length_penalty);

        for step in 0..max_length {
            let prefixes: Vec<Vec<i64>> = live.iter().map(|h| h.tokens.clone()).collect();
            let log_probs = self.next_token_log_probs(
                int_tensor(&prefixes, &device),
                memory.clone(),
                memory_padding.clone(),
                &mut cache,
            );
            let vocab = log_probs.dims()[1];
            let values: Vec<f32> = log_probs
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("float log-probabilities");

            let mut next = Vec::with_capacity(live.len());
            let mut parents = Vec::with_capacity(live.len());
            for s in 0..sentences {
                let rows = s * k..(s + 1) * k;
                if done[s] {
                    for row in rows {
                        let mut tokens = live[row].tokens.clone();
                        tokens.push(special.pad as i64);
                        next.push(Hypothesis {
                            tokens,
                            score: live[row].score,
                        });
                        parents.push(row);
                    }
                    continue;
                }
                let mut candidates: Vec<(f64, usize, usize)> = rows
                    .clone()
                    .filter(|&row| live[row].score.is_finite())
                    .flat_map(|row| {
                        let base = live[row].score;
                        let values = &values[row * vocab..(row + 1) * vocab];
                        (0..vocab).map(move |v| (base + values[v] as f64, row, v))
                    })
                    .collect();
                // Best first; ties go to the lower row, then the lower token (as greedy's argmax).
                let by_rank = |a: &(f64, usize, usize), b: &(f64, usize, usize)| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
                };
                let keep = (2 * k).min(candidates.len());
                if keep < candidates.len() {
                    candidates.select_nth_unstable_by(keep - 1, by_rank);
                    candidates.truncate(keep);
                }
                candidates.sort_by(by_rank);

                let mut new_beams = Vec::with_capacity(k);
                for (rank, &(score, row, token)) in candidates.iter().enumerate() {
                    if token == special.eos {
                        // An EOS counts only among the k best candidates (fairseq's rule).
                        if rank < k {
                            let mut tokens = live[row].tokens.clone();
                            tokens.push(token as i64);
                            finished[s].push((tokens, normalise(score, step + 1)));
                        }
                    } else if new_beams.len() < k {
                        let mut tokens = live[row].tokens.clone();
                        tokens.push(token as i64);
                        new_beams.push((Hypothesis { tokens, score }, row));
                    }
                    if new_beams.len() == k {
                        break;
                    }
                }
                if finished[s].len() >= k {
                    done[s] = true;
                }
                // Fill the sentence's rows with dead hypotheses if the vocabulary ran out.
                while new_beams.len() < k {
                    let mut tokens = live[s * k].tokens.clone();
                    tokens.push(special.pad as i64);
                    new_beams.push((
                        Hypothesis {
                            tokens,
                            score: f64::NEG_INFINITY,
                        },
                        s * k,
                    ));
                }
                for (hypothesis, parent) in new_beams {
                    next.push(hypothesis);
                    parents.push(parent);
                }
            }
            live = next;
            if done.iter().all(|&d| d) {
                break;
            }
            if parents
                .iter()
                .enumerate()
                .any(|(row, &parent)| row != parent)
            {
                // Rows now hold other parents' prefixes: rebuild the cache from them.
                cache = self.new_cache();
            }
        }

        (0..sentences)
            .map(|s| {
                if !done[s] {
                    for hypothesis in &live[s * k..(s + 1) * k] {
                        if hypothesis.score.is_finite() {
                            let length = hypothesis.tokens.len() - 1;
                            finished[s].push((
                                hypothesis.tokens.clone(),
                                normalise(hypothesis.score, length),
                            ));
                        }
                    }
                }
                finished[s]
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(tokens, _)| strip(tokens, special.eos))
                    .unwrap_or_default()
            })
            .collect()
    }
}
