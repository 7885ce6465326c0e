//! Transformer translation on a parallel corpus (IWSLT layout) or the built-in language pair;
//! after training, beam search over the test set and corpus BLEU.

mod beam_budget;
pub mod bleu;
mod test_set;

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::{AccuracyMetric, LossMetric};
use radam_datasets::batch::TranslationBatch;
use radam_datasets::synthetic_translation::SyntheticTranslation;
use radam_datasets::translation::{
    JointBpe, PAD_ID, ParallelCorpus, ParallelText, TokenBudgetDataset, TranslationBatcher,
    default_bpe_path,
};
use radam_models::decoding::BeamSearchConfig;
use radam_models::metrics::TokenPerplexityMetric;
use radam_models::transformer::{TransformerArchitecture, TransformerNmt, TransformerNmtConfig};

use super::{OnBackend, on_backend};
use crate::harness::memory_budget::{available_memory, check_fits, training_bytes};
use crate::harness::{
    DataFingerprint, HarnessError, RunReport, Session, SizePreset, TaskDefaults, TaskOptions,
    TrainArgs, TrainingData,
};
use crate::schedule::ScheduleKind;
use crate::tasks::nmt::bleu::Bleu;
use beam_budget::check_beam_fits;
use test_set::{longest_translation, translate_and_score};

/// Command-line arguments of the translation example. `--batch-size` counts tokens (source or
/// target, padded) per batch, as fairseq's `--max-tokens` does.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "nmt_transformer",
    about = "Train a Transformer translation model with RAdam (or a baseline)"
)]
pub struct NmtArgs {
    /// Flags shared by every example.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Source language suffix of the corpus files (`train.de`).
    #[arg(long, default_value = "de")]
    pub source: String,
    /// Target language suffix of the corpus files (`train.en`).
    #[arg(long, default_value = "en")]
    pub target: String,
    /// Joint BPE vocabulary size [default: 10000 for a corpus, 600 built-in].
    #[arg(long)]
    pub bpe_vocab: Option<usize>,
    /// Beam size for the test-set translation.
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Training pairs with a side longer than this many BPE tokens are left out.
    #[arg(long, default_value_t = 100)]
    pub max_length: usize,
    /// Translate only the first N test sentences [default: 16 for --size tiny, 100 for small,
    /// all for paper].
    #[arg(long)]
    pub test_sentences: Option<usize>,
    /// Training pairs of the built-in language pair [default: per size].
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Layers of the encoder and of the decoder [default: 2, or 6 for --size paper].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Model width d_model, a multiple of the 4 heads; the feed-forward layers are twice as wide
    /// [default: 64 for --size tiny, 128 for small, 512 for paper].
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Where LayerNorm goes [default: pre for --size tiny and small, post for paper].
    #[arg(long, value_enum)]
    pub norm: Option<NormPlacement>,
    /// The Transformer's architecture [default: burn for --size tiny and small, fairseq for
    /// paper].
    #[arg(long, value_enum)]
    pub architecture: Option<Architecture>,
}

/// A Transformer architecture (`TransformerArchitecture`), as a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Architecture {
    /// Burn's layers: GELU, one embedding matrix for source, target and output, dropout on
    /// attention scores and activations too, Burn's sinusoids and initialisation.
    Burn,
    /// fairseq's transformer_iwslt_de_en, as the paper trains it: ReLU, separate source, target
    /// and output embeddings, no dropout on attention scores or activations, fairseq's
    /// sinusoids and initialisation.
    Fairseq,
}

/// Where a Transformer's LayerNorms sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NormPlacement {
    /// Before each sub-layer, plus a final LayerNorm (trains stably without warmup).
    Pre,
    /// After each residual sub-layer, as in Vaswani et al. and the paper's experiments.
    Post,
}

impl NmtArgs {
    /// The model `--size` describes, with `--layers`, `--d-model`, `--norm` and `--architecture`
    /// applied.
    fn model_config(&self, vocab: usize, pad: usize) -> TransformerNmtConfig {
        let config = match self.train.size {
            SizePreset::Tiny => TransformerNmtConfig::tiny(vocab, pad)
                .with_d_model(64)
                .with_d_ff(128),
            SizePreset::Small => TransformerNmtConfig::tiny(vocab, pad),
            SizePreset::Paper => TransformerNmtConfig::iwslt_de_en(vocab, pad),
        };
        let layers = self.layers.unwrap_or(config.encoder_layers);
        let (d_model, d_ff) = self
            .d_model
            .map_or((config.d_model, config.d_ff), |d_model| {
                (d_model, 2 * d_model)
            });
        let norm_first = self
            .norm
            .map_or(config.norm_first, |norm| norm == NormPlacement::Pre);
        let config = match self.architecture {
            Some(Architecture::Burn) => config.with_architecture(TransformerArchitecture::Burn),
            Some(Architecture::Fairseq) => {
                config.with_architecture(TransformerArchitecture::Fairseq)
            }
            None => config,
        };
        config
            .with_encoder_layers(layers)
            .with_decoder_layers(layers)
            .with_d_model(d_model)
            .with_d_ff(d_ff)
            .with_norm_first(norm_first)
    }

    /// The model flags given on the command line, for the run's settings.
    fn model_options(&self) -> TaskOptions {
        let mut options = TaskOptions::new();
        if let Some(layers) = self.layers {
            options.insert("layers".to_string(), layers.to_string());
        }
        if let Some(d_model) = self.d_model {
            options.insert("d_model".to_string(), d_model.to_string());
        }
        if let Some(norm) = self.norm {
            options.insert("norm".to_string(), format!("{norm:?}").to_lowercase());
        }
        if let Some(architecture) = self.architecture {
            options.insert(
                "architecture".to_string(),
                format!("{architecture:?}").to_lowercase(),
            );
        }
        options
    }
}

/// The defaults of each size: linear decay, weight decay 1e-4 (fairseq's IWSLT recipe); the
/// batch size counts tokens.
pub fn defaults(size: SizePreset) -> TaskDefaults {
    let (epochs, batch_size) = match size {
        SizePreset::Tiny => (1, 256),
        SizePreset::Small => (6, 1024),
        SizePreset::Paper => (50, 4096),
    };
    TaskDefaults {
        name: "nmt",
        epochs,
        batch_size,
        adaptive_lr: match size {
            SizePreset::Paper => 5e-4,
            _ => 1e-3,
        },
        sgd_lr: 0.1,
        weight_decay: 1e-4,
        schedule: ScheduleKind::Linear,
        // fairseq's Transformer recipe (IWSLT'14 De-En): Adam betas (0.9, 0.98).
        beta_2: 0.98,
    }
}

/// Trains the Transformer as `args` say, translates the test set and reports BLEU.
///
/// # Errors
/// Bad flags, missing or malformed data, an unusable artifact directory.
pub fn run(args: NmtArgs) -> Result<RunReport, HarnessError> {
    if args.beam == 0 || args.max_length == 0 || args.pairs == Some(0) {
        return Err(HarnessError::Invalid(
            "--beam, --max-length and --pairs must be at least 1".to_string(),
        ));
    }
    if args.layers == Some(0) || args.d_model == Some(0) {
        return Err(HarnessError::Invalid(
            "--layers and --d-model must be at least 1".to_string(),
        ));
    }
    let builtin = args.train.data_dir.is_none();
    let bpe_vocab = args
        .bpe_vocab
        .unwrap_or(if builtin { BUILTIN_BPE } else { CORPUS_BPE });
    let pairs = args.pairs.unwrap_or(match args.train.size {
        SizePreset::Tiny => 300,
        SizePreset::Small => 6000,
        SizePreset::Paper => 150_000,
    });
    let mut options = TaskOptions::from([
        ("bpe_vocab".to_string(), bpe_vocab.to_string()),
        ("max_length".to_string(), args.max_length.to_string()),
    ]);
    options.extend(args.model_options());
    if builtin {
        options.insert("pairs".to_string(), pairs.to_string());
    } else {
        options.insert("source".to_string(), args.source.clone());
        options.insert("target".to_string(), args.target.clone());
    }
    let session = Session::open(&args.train, &defaults(args.train.size), options)?;
    if builtin {
        check_fits(
            &format!("--pairs {pairs}"),
            builtin_pairs_bytes(pairs, args.train.seed),
            available_memory(),
        )?;
    }
    on_backend(
        session.placement(),
        NmtTask {
            args,
            session,
            bpe_vocab,
            pairs,
        },
    )
}

/// Bytes to train a Transformer of `config` over `vocab` pieces at `batch_tokens` tokens a
/// batch: its parameters (embeddings and output layer, attention and feed-forward blocks) with
/// their optimizer state, and about twenty activations of width d_model per token and layer.
fn transformer_bytes(config: &TransformerNmtConfig, vocab: usize, batch_tokens: usize) -> u128 {
    let (d, f, v) = (config.d_model as u128, config.d_ff as u128, vocab as u128);
    let (encoder, decoder) = (config.encoder_layers as u128, config.decoder_layers as u128);
    // The shared embedding counted twice (input and output), or three matrices.
    let embeddings = if config.share_embeddings { 2 } else { 3 };
    let parameters = (embeddings * v * d)
        .saturating_add(encoder.saturating_mul(4 * d * d + 2 * d * f))
        .saturating_add(decoder.saturating_mul(8 * d * d + 2 * d * f));
    let activations = (batch_tokens as u128)
        .saturating_mul(d)
        .saturating_mul(encoder + decoder)
        .saturating_mul(20 * 4);
    training_bytes(parameters).saturating_add(activations)
}

/// Bytes the built-in language pair of `pairs` pairs takes: measured on a sample of it (its
/// sentences, their BPE ids and the batches built from them, about four times the text).
fn builtin_pairs_bytes(pairs: usize, seed: u64) -> u128 {
    const SAMPLE: usize = 64;
    let sample = SyntheticTranslation::new(seed).sample(SAMPLE, seed);
    let text: usize = sample
        .pairs
        .iter()
        .map(|(source, target)| source.len() + target.len())
        .sum();
    (pairs as u128).saturating_mul(4 * text.div_ceil(SAMPLE) as u128)
}

/// The joint BPE's default size for a real corpus and for the built-in language pair.
const CORPUS_BPE: usize = 10_000;
const BUILTIN_BPE: usize = 600;
struct NmtTask {
    args: NmtArgs,
    session: Session,
    bpe_vocab: usize,
    pairs: usize,
}

impl NmtTask {
    /// The corpus, its joint BPE, and what they were read from.
    fn corpus(&self) -> Result<(ParallelCorpus, JointBpe, DataFingerprint), HarnessError> {
        let Some(dir) = &self.session.settings().data_dir else {
            let pairs = self.pairs;
            let seed = self.args.train.seed;
            let corpus = SyntheticTranslation::new(seed).corpus(pairs, (pairs / 20).max(16), seed);
            let bpe = JointBpe::train(&corpus.train, self.bpe_vocab)?;
            self.session.say(format!(
                "built-in language pair: {} training pairs, joint BPE of {} pieces",
                corpus.train.pairs.len(),
                bpe.vocab_size()
            ));
            let fingerprint =
                DataFingerprint::default().with_derived("bpe pieces", bpe.vocab_size());
            return Ok((corpus, bpe, fingerprint));
        };
        let corpus = ParallelCorpus::load(dir, &self.args.source, &self.args.target)?;
        let vocab = self.bpe_vocab;
        let path = default_bpe_path(dir, vocab, &corpus.train);
        if !path.is_file() {
            self.session.say(format!(
                "learning a joint BPE of {vocab} pieces into {}…",
                path.display()
            ));
        }
        let bpe = JointBpe::load_or_train(&path, &corpus.train, vocab)?;
        let mut files = ParallelCorpus::files(dir, &self.args.source, &self.args.target);
        files.push(path);
        let fingerprint =
            DataFingerprint::of_files(&files)?.with_derived("bpe pieces", bpe.vocab_size());
        self.session.say(format!(
            "{}: {} training pairs ({} → {}), joint BPE of {} pieces",
            dir.display(),
            corpus.train.pairs.len(),
            self.args.source,
            self.args.target,
            bpe.vocab_size()
        ));
        Ok((corpus, bpe, fingerprint))
    }

    /// How many test sentences to translate: `--test-sentences`, else the size's default.
    fn test_sentences(&self) -> usize {
        self.args
            .test_sentences
            .unwrap_or(match self.args.train.size {
                SizePreset::Tiny => 16,
                SizePreset::Small => 100,
                SizePreset::Paper => usize::MAX,
            })
    }

    /// Beam-searches the test sources (up to [`test_sentences`](Self::test_sentences)) and
    /// scores the detokenised output against the references.
    fn test_bleu<B: Backend>(
        &self,
        model: &TransformerNmt<B>,
        bpe: &JointBpe,
        test: &ParallelText,
        device: &B::Device,
    ) -> Result<Bleu, HarnessError> {
        let pairs = &test.pairs[..test.pairs.len().min(self.test_sentences())];
        let search = BeamSearchConfig::new()
            .with_beam_size(self.args.beam)
            .with_max_length(longest_translation(self.args.max_length));
        translate_and_score(&self.session, model, bpe, pairs, &search, device)
    }
}

impl OnBackend for NmtTask {
    type Output = RunReport;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<RunReport, HarnessError> {
        let settings = self.session.settings().clone();
        let device = devices[0].clone();
        let (corpus, bpe, fingerprint) = self.corpus()?;
        let vocab = bpe.vocab_size();
        let pad = PAD_ID as usize;
        let config = self.args.model_config(vocab, pad);
        config.validate().map_err(HarnessError::Invalid)?;
        let max_length = self.args.max_length.min(config.max_positions - 2);
        if max_length < self.args.max_length {
            self.session.say(format!(
                "note: --max-length {} is beyond the model's {} positions: pairs longer than \
                 {max_length} tokens are left out",
                self.args.max_length, config.max_positions
            ));
        }
        if corpus
            .train
            .pairs
            .iter()
            .all(|(source, target)| source.trim().is_empty() || target.trim().is_empty())
        {
            return Err(HarnessError::Invalid(
                "every training pair has an empty side: there is nothing to learn from".to_string(),
            ));
        }
        check_fits(
            &format!(
                "a Transformer of {} + {} layers of width {} (--layers, --d-model) over {vocab} \
                 pieces, at {} tokens a batch",
                config.encoder_layers, config.decoder_layers, config.d_model, settings.batch_size
            ),
            transformer_bytes(&config, vocab, settings.batch_size),
            available_memory(),
        )?;
        // The test-set translation is checked now, not after the training it would waste.
        let beam = self.args.beam;
        if beam > vocab {
            return Err(HarnessError::Invalid(format!(
                "--beam {beam} is larger than the vocabulary ({vocab} pieces): at most {vocab} \
                 hypotheses can differ"
            )));
        }
        check_beam_fits(&config, vocab, beam, max_length, available_memory())?;
        let train = TokenBudgetDataset::new(
            bpe.encode_pairs(&corpus.train)?,
            settings.batch_size,
            max_length,
        )?;
        let valid = TokenBudgetDataset::new(
            bpe.encode_pairs(&corpus.valid)?,
            settings.batch_size,
            max_length,
        )?;
        if train.too_long > 0 {
            self.session.say(format!(
                "left out {} training pairs longer than {max_length} tokens",
                train.too_long
            ));
        }
        if train.empty > 0 {
            self.session.say(format!(
                "left out {} training pairs with an empty side",
                train.empty
            ));
        }
        // Items are whole batches (a token budget each): replicas share them out.
        let train = self.session.shard(Arc::new(train))?;
        let steps_per_epoch = train.len() / devices.len();
        let train_loader: Arc<dyn DataLoader<B, TranslationBatch<B>>> =
            DataLoaderBuilder::new(TranslationBatcher)
                .batch_size(1)
                .shuffle(settings.seed)
                .build(train);
        let valid_loader = DataLoaderBuilder::new(TranslationBatcher)
            .batch_size(1)
            .build(valid);

        B::seed(&device, settings.seed);
        let model = config.init::<B>(&device);
        self.session.say(format!(
            "Transformer {}+{} layers, d {} ({} parameters), {} {}, {} epochs of {steps_per_epoch} steps",
            config.encoder_layers,
            config.decoder_layers,
            config.d_model,
            burn::module::Module::num_params(&model),
            settings.optimizer.label(),
            settings.lr,
            settings.epochs
        ));
        let inner_device = device.clone();
        let trained = self.session.fit(
            devices,
            model,
            TrainingData {
                train: train_loader,
                valid: valid_loader,
                steps_per_epoch,
                fingerprint,
            },
            |builder| {
                builder
                    .metric_train_numeric(LossMetric::new())
                    .metric_valid_numeric(LossMetric::new())
                    .metric_train_numeric(TokenPerplexityMetric::new())
                    .metric_valid_numeric(TokenPerplexityMetric::new())
                    .metric_train_numeric(AccuracyMetric::new().with_pad_token(pad))
                    .metric_valid_numeric(AccuracyMetric::new().with_pad_token(pad))
            },
        )?;
        let results = if self.test_sentences() == 0 {
            self.session
                .say("no test set translated (--test-sentences 0), so no BLEU");
            Vec::new()
        } else {
            self.session.say(format!(
                "translating the test set with beam {}…",
                self.args.beam
            ));
            let bleu = self.test_bleu(&trained.model, &bpe, &corpus.test, &inner_device)?;
            self.session.say(&bleu);
            vec![
                ("test BLEU".to_string(), bleu.score),
                (
                    "test hypothesis tokens".to_string(),
                    bleu.hypothesis_length as f64,
                ),
                (
                    "test reference tokens".to_string(),
                    bleu.reference_length as f64,
                ),
            ]
        };
        let report = self.session.complete(&trained, results)?;
        report.print();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use radam_models::transformer::{FeedForwardActivation, Sinusoids, TransformerInit};

    fn parse(flags: &[&str]) -> NmtArgs {
        NmtArgs::try_parse_from(std::iter::once("nmt").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn model_flags_reshape_the_size_preset_and_are_recorded() {
        let default = parse(&[]).model_config(600, 0);
        let preset = TransformerNmtConfig::tiny(600, 0);
        assert_eq!(
            (
                default.encoder_layers,
                default.d_model,
                default.d_ff,
                default.norm_first
            ),
            (
                preset.encoder_layers,
                preset.d_model,
                preset.d_ff,
                preset.norm_first
            )
        );
        assert!(parse(&[]).model_options().is_empty());

        let args = parse(&["--layers", "4", "--d-model", "96", "--norm", "post"]);
        let config = args.model_config(600, 0);
        assert_eq!(
            (
                config.encoder_layers,
                config.decoder_layers,
                config.d_model,
                config.d_ff
            ),
            (4, 4, 96, 192)
        );
        assert!(!config.norm_first);
        let options = args.model_options();
        assert_eq!(options["layers"], "4");
        assert_eq!(options["d_model"], "96");
        assert_eq!(options["norm"], "post");
        // The paper's model is post-norm, 6 + 6 layers of 512.
        let paper = parse(&["--size", "paper"]).model_config(600, 0);
        assert_eq!(
            (paper.encoder_layers, paper.d_model, paper.norm_first),
            (6, 512, false)
        );
    }

    #[test]
    fn the_architecture_is_fairseqs_for_the_paper_and_a_flag_otherwise() {
        let fairseq = |config: &TransformerNmtConfig| {
            (
                config.activation,
                config.share_embeddings,
                config.sinusoids,
                config.initialisation,
            ) == (
                FeedForwardActivation::Relu,
                false,
                Sinusoids::Fairseq,
                TransformerInit::Fairseq,
            )
        };
        assert!(fairseq(&parse(&["--size", "paper"]).model_config(600, 0)));
        assert!(!fairseq(&parse(&[]).model_config(600, 0)));
        let args = parse(&["--architecture", "fairseq", "--d-model", "64"]);
        let small = args.model_config(600, 0);
        assert!(fairseq(&small));
        assert_eq!((small.d_model, small.attention_dropout), (64, Some(0.0)));
        assert_eq!(args.model_options()["architecture"], "fairseq");
        let burn = parse(&["--size", "paper", "--architecture", "burn"]).model_config(600, 0);
        assert!(burn.share_embeddings && burn.activation == FeedForwardActivation::Gelu);
    }
}
