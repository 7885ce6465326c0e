//! Whether the test-set beam search fits in memory, checked before training: a rough estimate of
//! its bytes against what the machine has available.

use radam_models::transformer::TransformerNmtConfig;

use super::test_set::{longest_translation, sentences_per_batch};
use crate::harness::HarnessError;

/// Bytes of memory the beam search needs, roughly, for `rows` = sentences × beam hypotheses
/// decoded together: per row the logits and their copies, the decoder's cached self-attention
/// keys and values over the output (twice, while a step appends to them), the repeated encoder
/// output and its cross-attention keys and values; plus the ranked candidates of one sentence.
fn beam_search_bytes(
    config: &TransformerNmtConfig,
    vocab: usize,
    beam: usize,
    output_length: usize,
    source_length: usize,
) -> u128 {
    let rows = (sentences_per_batch(beam) * beam) as u128;
    let (vocab, beam) = (vocab as u128, beam as u128);
    let d = config.d_model as u128;
    let layers = config.decoder_layers as u128;
    let per_row = 4
        * (4 * vocab
            + 4 * layers * output_length as u128 * d
            + (1 + 2 * layers) * source_length as u128 * d);
    rows * per_row + beam * vocab * 24
}

/// Refuses a beam whose search would need more than half of the `available` memory (when it is
/// known) for the test-set translation of a model of `config` and vocabulary `vocab`, with
/// training pairs up to `max_length` tokens.
pub(super) fn check_beam_fits(
    config: &TransformerNmtConfig,
    vocab: usize,
    beam: usize,
    max_length: usize,
    available: Option<u128>,
) -> Result<(), HarnessError> {
    let output_length = longest_translation(max_length);
    let needed = beam_search_bytes(config, vocab, beam, output_length, max_length);
    match available {
        Some(available) if needed > available / 2 => {
            let gb = |bytes: u128| bytes as f64 / 1e9;
            Err(HarnessError::Invalid(format!(
                "--beam {beam} would need about {:.1} GB to translate {} sentences at a time \
                 (vocabulary {vocab}, up to {} tokens), more than half of the {:.1} GB \
                 available: use a smaller --beam",
                gb(needed),
                sentences_per_batch(beam),
                output_length,
                gb(available)
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radam_datasets::translation::PAD_ID;

    #[test]
    fn a_beam_beyond_half_the_memory_is_refused() {
        let config = TransformerNmtConfig::tiny(600, PAD_ID as usize)
            .with_d_model(64)
            .with_d_ff(128);
        let needed = beam_search_bytes(&config, 600, 500, 110, 100);
        // A beam of 500 decodes one sentence at a time; every row holds at least its logits
        // (4 bytes × vocabulary, four copies).
        assert!(needed >= 500 * 16 * 600, "{needed}");
        let just_enough = Some(2 * needed);
        assert!(check_beam_fits(&config, 600, 500, 100, just_enough).is_ok());
        assert!(check_beam_fits(&config, 600, 500, 100, None).is_ok());
        let error = check_beam_fits(&config, 600, 500, 100, Some(2 * needed - 2))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--beam 500 would need about ") && error.ends_with("smaller --beam"),
            "{error}"
        );
    }

    #[test]
    fn the_estimate_grows_with_beam_vocabulary_and_length() {
        let config = TransformerNmtConfig::tiny(600, PAD_ID as usize);
        let base = beam_search_bytes(&config, 600, 2, 50, 40);
        // 32 sentences of 2 and of 4 hypotheses: the rows double, and the candidates.
        assert_eq!(beam_search_bytes(&config, 600, 4, 50, 40), 2 * base);
        assert!(beam_search_bytes(&config, 1200, 2, 50, 40) > base);
        assert!(beam_search_bytes(&config, 600, 2, 100, 40) > base);
        assert!(beam_search_bytes(&config, 600, 2, 50, 80) > base);
    }
}
