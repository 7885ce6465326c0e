//! The beam search this crate had before [`crate::layers::incremental`]: over Burn's autoregressive
//! cache, which cannot be reordered, rebuilt from the surviving prefixes whenever hypotheses move
//! to other rows. Kept as the oracle the batched, incremental search is tested against.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::decoding::{
    BeamSearchConfig, Hypothesis, SpecialTokens, Translation, int_tensor, ranked_candidates,
};
use crate::models::transformer::TransformerNmt;

/// The reference beam search, with each sentence's best hypothesis and its score.
pub fn reference_beam_search<B: Backend>(
    model: &TransformerNmt<B>,
    source: Tensor<B, 2, Int>,
    source_padding: Tensor<B, 2, Bool>,
    special: SpecialTokens,
    config: &BeamSearchConfig,
) -> Vec<Translation> {
    assert!(config.beam_size >= 1, "beam_size must be at least 1");
    let device = source.device();
    let sentences = source.dims()[0];
    let k = config.beam_size;
    let memory = model.encode(source, source_padding.clone());
    let repeat: Vec<i64> = (0..sentences)
        .flat_map(|s| std::iter::repeat_n(s as i64, k))
        .collect();
    let repeat = Tensor::<B, 1, Int>::from_data(TensorData::new(repeat, [sentences * k]), &device);
    let memory = memory.select(0, repeat.clone());
    let memory_padding = source_padding.int().select(0, repeat).bool();

    let mut live = Hypothesis::first_beams(sentences, k, special.bos);
    let mut finished: Vec<Vec<(Vec<i64>, f64)>> = vec![Vec::new(); sentences];
    let mut done = vec![false; sentences];
    let mut cache = model.new_cache();
    let max_length = config
        .max_length
        .min(model.max_positions().saturating_sub(1));
    let normalise = |score: f64, length: usize| score / (length as f64).powf(config.length_penalty);

    for step in 0..max_length {
        let prefixes: Vec<Vec<i64>> = live.iter().map(|h| h.tokens.clone()).collect();
        let log_probs = model.next_token_log_probs(
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
            let candidates = ranked_candidates(&live, rows.clone(), &values, vocab, k);

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
            cache = model.new_cache();
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
            Translation::best(&finished[s], special.eos)
        })
        .collect()
}
