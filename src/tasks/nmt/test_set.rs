//! The test-set translation after training: batched beam search over the test sources, the
//! hypotheses written to `translations.txt`, corpus BLEU against the references.

use std::time::{Duration, Instant};

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;
use radam_datasets::batch::TranslationBatch;
use radam_datasets::translation::{
    BOS_ID, EOS_ID, JointBpe, PAD_ID, PairBatch, TranslationBatcher,
};
use radam_models::decoding::{BeamSearchConfig, SpecialTokens};
use radam_models::transformer::TransformerNmt;

use crate::harness::error::io_error;
use crate::harness::{HarnessError, Session};
use crate::renderer::format_duration;
use crate::run_dir::{TRANSLATIONS, write_atomic};
use crate::tasks::nmt::bleu::{Bleu, corpus_bleu};

/// Test sentences beam-searched together at the default beam of 5.
const SENTENCES_PER_BATCH: usize = 32;

/// Test sentences beam-searched together with a beam of `beam`: 32 up to the default beam of 5,
/// fewer as the beam grows (the hypotheses decoded together stay about 160), down to one
/// sentence, so that a wide beam neither takes 32 times the memory nor runs for minutes
/// between two progress lines.
pub(super) fn sentences_per_batch(beam: usize) -> usize {
    (SENTENCES_PER_BATCH * 5 / beam.max(1)).clamp(1, SENTENCES_PER_BATCH)
}
/// How often the test-set translation reports its progress.
const TRANSLATION_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The progress line of the test-set translation: `done` of `total` sentences after `elapsed`,
/// the rate and the time left at that rate.
fn translation_progress(done: usize, total: usize, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let rate = done as f64 / seconds;
    let left = if done == total {
        "done".to_string()
    } else {
        let eta = Duration::from_secs_f64((total - done) as f64 / rate.max(1e-9));
        format!("ETA {}", format_duration(eta))
    };
    format!(
        "translated {done}/{total} test sentences in {} ({rate:.1} sentences/s), {left}",
        format_duration(elapsed)
    )
}

/// The longest translation the beam search produces for a model trained on pairs of up to
/// `max_length` tokens a side (and the output length its memory estimate assumes).
pub(super) fn longest_translation(max_length: usize) -> usize {
    max_length + 10
}

/// Translates the sources of `pairs` (`(source, reference)`) with `search`, reporting progress
/// through `session`, writes the hypotheses to the run's `translations.txt` (node 0) and scores
/// them against the references.
///
/// # Errors
/// A sentence the BPE cannot encode or decode, or an unwritable `translations.txt`.
pub(super) fn translate_and_score<B: Backend>(
    session: &Session,
    model: &TransformerNmt<B>,
    bpe: &JointBpe,
    pairs: &[(String, String)],
    search: &BeamSearchConfig,
    device: &B::Device,
) -> Result<Bleu, HarnessError> {
    let special = SpecialTokens {
        bos: BOS_ID as usize,
        eos: EOS_ID as usize,
        pad: PAD_ID as usize,
    };
    let keep = model.max_positions().saturating_sub(2).max(1);
    let started = Instant::now();
    let mut last_report = Duration::ZERO;
    let mut hypotheses = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(sentences_per_batch(search.beam_size)) {
        let mut sources = Vec::with_capacity(chunk.len());
        for (source, _) in chunk {
            let mut ids = bpe.encode(source)?;
            ids.truncate(keep);
            sources.push((ids, Vec::new()));
        }
        let batch: TranslationBatch<B> =
            TranslationBatcher.batch(vec![PairBatch { pairs: sources }], device);
        for ids in model.beam_search(batch.source, batch.source_padding, special, search) {
            let ids: Vec<u32> = ids.into_iter().map(|id| id as u32).collect();
            hypotheses.push(bpe.decode(&ids)?);
        }
        let elapsed = started.elapsed();
        if elapsed >= last_report + TRANSLATION_REPORT_EVERY || hypotheses.len() == pairs.len() {
            last_report = elapsed;
            session.say(translation_progress(hypotheses.len(), pairs.len(), elapsed));
        }
    }
    let references: Vec<String> = pairs.iter().map(|(_, target)| target.clone()).collect();
    if let (Some(hypothesis), Some((source, reference))) = (hypotheses.first(), pairs.first()) {
        session.say(format!(
            "example: {source}\n  reference:   {reference}\n  translation: {hypothesis}"
        ));
    }
    if session.node_rank() == 0 {
        let path = session.dir().join(TRANSLATIONS);
        let mut text = hypotheses.join("\n");
        text.push('\n');
        write_atomic(&path, text.as_bytes()).map_err(|error| io_error("write", &path, error))?;
    }
    Ok(corpus_bleu(&hypotheses, &references))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_beams_decode_fewer_sentences_at_a_time() {
        assert_eq!(sentences_per_batch(1), 32);
        assert_eq!(sentences_per_batch(5), 32);
        assert_eq!(sentences_per_batch(10), 16);
        assert_eq!(sentences_per_batch(160), 1);
        assert_eq!(sentences_per_batch(600), 1);
    }

    #[test]
    fn translation_progress_gives_the_rate_and_the_time_left() {
        assert_eq!(
            translation_progress(64, 320, Duration::from_secs(8)),
            "translated 64/320 test sentences in 8 s (8.0 sentences/s), ETA 32 s"
        );
        assert_eq!(
            translation_progress(320, 320, Duration::from_secs(100)),
            "translated 320/320 test sentences in 1m40s (3.2 sentences/s), done"
        );
    }
}
