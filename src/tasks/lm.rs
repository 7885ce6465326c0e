//! LSTM language model on a PTB / WikiText / One Billion Word directory or the built-in corpus;
//! after training, the perplexity of the test split (the figure papers report).

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::tensor::ElementConversion;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::LossMetric;
use radam_datasets::batch::LmBatch;
use radam_datasets::lm::{BpttDataset, LmBatcher, LmCorpus, VocabularyOptions};
use radam_datasets::tokens::TokenStream;
use radam_models::lstm_lm::{LstmLm, LstmLmConfig};
use radam_models::metrics::TokenPerplexityMetric;

use super::{OnBackend, on_backend};
use crate::harness::memory_budget::{available_memory, check_fits};
use crate::harness::{
    DataFingerprint, HarnessError, RunReport, Session, SizePreset, TaskDefaults, TaskOptions,
    TrainArgs, TrainingData,
};
use crate::schedule::ScheduleKind;

/// Command-line arguments of the language-model example.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "lm_lstm",
    about = "Train an LSTM language model with RAdam (or a baseline)"
)]
pub struct LmArgs {
    /// Flags shared by every example.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Tokens per truncated back-propagation window [default: 35, 20 for the paper's model].
    #[arg(long)]
    pub bptt: Option<usize>,
    /// Training tokens of the built-in corpus [default: per size].
    #[arg(long)]
    pub tokens: Option<usize>,
    /// Words seen fewer times than this become `<unk>` (One Billion Word; the paper uses 4).
    #[arg(long, default_value_t = 4)]
    pub min_count: u64,
}

/// The defaults of each size (the paper trains One Billion Word with Adam/RAdam at 1e-3).
pub fn defaults(size: SizePreset) -> TaskDefaults {
    let (epochs, batch_size) = match size {
        SizePreset::Tiny => (1, 8),
        // 300 k tokens in 32 × 35 a step for 7 epochs: 1869 steps, RAdam's r_t 0.81 at the last.
        SizePreset::Small => (7, 32),
        SizePreset::Paper => (10, 128),
    };
    TaskDefaults {
        name: "lm",
        epochs,
        batch_size,
        adaptive_lr: 1e-3,
        sgd_lr: 1.0,
        weight_decay: 0.0,
        schedule: ScheduleKind::Constant,
        beta_2: 0.999,
    }
}

/// Trains the language model as `args` say and reports the metrics.
///
/// # Errors
/// Bad flags, missing or malformed data, an unusable artifact directory.
pub fn run(args: LmArgs) -> Result<RunReport, HarnessError> {
    let bptt = args.bptt.unwrap_or(match args.train.size {
        SizePreset::Small => 35,
        SizePreset::Tiny | SizePreset::Paper => 20,
    });
    let tokens = args.tokens.unwrap_or(match args.train.size {
        SizePreset::Tiny => 12_000,
        SizePreset::Small => 300_000,
        SizePreset::Paper => 2_000_000,
    });
    if bptt == 0 || tokens == 0 {
        return Err(HarnessError::Invalid(
            "--bptt and --tokens must be at least 1".to_string(),
        ));
    }
    let mut options = TaskOptions::from([
        ("bptt".to_string(), bptt.to_string()),
        ("min_count".to_string(), args.min_count.to_string()),
    ]);
    if args.train.data_dir.is_none() {
        options.insert("tokens".to_string(), tokens.to_string());
    }
    let session = Session::open(&args.train, &defaults(args.train.size), options)?;
    if args.train.data_dir.is_none() {
        // The built-in corpus: u32 ids of the three splits, with room for the vectors to grow.
        check_fits(
            &format!("--tokens {tokens}"),
            (tokens as u128).saturating_mul(12),
            available_memory(),
        )?;
    }
    on_backend(
        session.placement(),
        LmTask {
            args,
            session,
            bptt,
            tokens,
        },
    )
}

struct LmTask {
    args: LmArgs,
    session: Session,
    bptt: usize,
    tokens: usize,
}

/// Above this share of `<unk>` in the validation text, the perplexity says little.
const UNK_WARNING: f64 = 0.5;

/// A warning when most validation tokens are `<unk>` (words the training text does not have).
fn unknown_words_warning(corpus: &LmCorpus) -> Option<String> {
    let unknown = corpus.valid.count(corpus.vocab.unk()) as f64 / corpus.valid.len().max(1) as f64;
    (unknown > UNK_WARNING).then(|| {
        format!(
            "warning: {:.0} % of the validation tokens are <unk> (words not in the training \
             vocabulary): its perplexity says little; check that valid.txt is the same language \
             and tokenisation as train.txt",
            100.0 * unknown
        )
    })
}

impl LmTask {
    fn corpus(&self) -> Result<LmCorpus, HarnessError> {
        let Some(dir) = &self.session.settings().data_dir else {
            let corpus = LmCorpus::builtin(self.tokens, self.args.train.seed)?;
            self.session.say(format!(
                "built-in corpus: {} training tokens, {} words; the best possible perplexity is {:.1}",
                corpus.train.len(),
                corpus.vocab.len(),
                corpus.optimal_perplexity.unwrap_or(f64::NAN)
            ));
            return Ok(corpus);
        };
        let corpus = if dir.join("training-monolingual.tokenized.shuffled").is_dir() {
            let cache = self.session.dir().join("token-cache");
            self.session.say(format!(
                "One Billion Word in {}: tokenising into {} (once)…",
                dir.display(),
                cache.display()
            ));
            LmCorpus::one_billion_word(dir, &cache, self.args.min_count)?
        } else {
            LmCorpus::word_level(dir, &VocabularyOptions::default())?
        };
        self.session.say(format!(
            "{}: {} training tokens, {} words",
            dir.display(),
            corpus.train.len(),
            corpus.vocab.len()
        ));
        if let Some(warning) = unknown_words_warning(&corpus) {
            self.session.say(warning);
        }
        Ok(corpus)
    }
}

impl OnBackend for LmTask {
    type Output = RunReport;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<RunReport, HarnessError> {
        let settings = self.session.settings().clone();
        let device = devices[0].clone();
        let corpus = self.corpus()?;
        let vocab = corpus.vocab.len();
        let bptt = self.bptt;
        let config = match settings.size {
            SizePreset::Tiny => LstmLmConfig::small(vocab)
                .with_d_embedding(32)
                .with_d_hidden(64),
            SizePreset::Small => LstmLmConfig::small(vocab),
            SizePreset::Paper => LstmLmConfig::paper(vocab),
        };
        config.validate().map_err(HarnessError::Invalid)?;
        // Rows continue each other from batch to batch: no shuffling (state is carried). With
        // several replicas the rows of the whole step's batch are dealt out among them, so
        // each replica keeps continuing its own rows.
        let replicas = settings.replicas();
        let train = BpttDataset::new(corpus.train.clone(), settings.batch_size * replicas, bptt)?;
        let steps_per_epoch = train.batches();
        let fingerprint =
            DataFingerprint::of_files(&corpus.files)?.with_derived("vocabulary", vocab);
        let train = self.session.shard(Arc::new(train))?;
        let train_loader: Arc<dyn DataLoader<B, LmBatch<B>>> = DataLoaderBuilder::new(LmBatcher)
            .batch_size(settings.batch_size)
            .build(train);
        let valid_loader = evaluation_loader(&corpus.valid, settings.batch_size, bptt)?;

        B::seed(&device, settings.seed);
        let model = config.init::<B>(&device);
        self.session.say(format!(
            "LSTM LM {}×{} over {vocab} words, {} ({} parameters), {} {}, {} epochs of \
             {steps_per_epoch} steps",
            config.num_layers,
            config.d_hidden,
            config.output_description(),
            burn::module::Module::num_params(&model),
            settings.optimizer.label(),
            settings.lr,
            settings.epochs
        ));
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
            },
        )?;
        let mut results = Vec::new();
        match test_perplexity(&trained.model, &corpus.test, settings.batch_size, bptt) {
            Some(perplexity) => results.push(("test perplexity".to_string(), perplexity)),
            None => self.session.say(format!(
                "no test perplexity: the test split ({} tokens) is shorter than one batch of \
                 {} × {bptt} tokens",
                corpus.test.len(),
                settings.batch_size
            )),
        }
        if let Some(best) = corpus.optimal_perplexity {
            results.push((
                "best possible perplexity (built-in corpus)".to_string(),
                best,
            ));
        }
        let report = self.session.complete(&trained, results)?;
        report.print();
        Ok(report)
    }
}

/// How a split is read for evaluation, validation and test alike: streams of `batch_size` rows
/// in windows of `bptt`, in order, the state carried from window to window.
fn evaluation_loader<B: Backend>(
    tokens: &TokenStream,
    batch_size: usize,
    bptt: usize,
) -> Result<Arc<dyn DataLoader<B, LmBatch<B>>>, radam_datasets::DataError> {
    let dataset = BpttDataset::new(tokens.clone(), batch_size, bptt)?;
    Ok(DataLoaderBuilder::new(LmBatcher)
        .batch_size(batch_size)
        .build(dataset))
}

/// Perplexity of `model` over the `test` tokens, read as validation reads its split
/// ([`evaluation_loader`]): `exp(Σ NLL / Σ tokens)`. `None` when the split is shorter than one
/// batch.
fn test_perplexity<B: Backend>(
    model: &LstmLm<B>,
    test: &TokenStream,
    batch_size: usize,
    bptt: usize,
) -> Option<f64> {
    let loader = evaluation_loader::<B>(test, batch_size, bptt).ok()?;
    let (mut nll, mut tokens) = (0.0f64, 0usize);
    for batch in loader.iter() {
        let output = model.forward_stream(batch);
        nll += output.nll_sum.into_scalar().elem::<f64>();
        tokens += output.tokens;
    }
    (tokens > 0).then(|| (nll / tokens as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use radam_datasets::lm::VocabularyOptions;

    #[test]
    fn a_validation_text_of_unknown_words_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("train.txt", "the cat sat on the mat\nthe dog sat\n");
        write("test.txt", "the cat\n");
        // 6 of 8 tokens (<eos> included) are unknown: 75 %.
        write("valid.txt", "un deux trois\nquatre cinq six\n");
        let corpus = LmCorpus::word_level(dir.path(), &VocabularyOptions::default()).unwrap();
        let warning = unknown_words_warning(&corpus).expect("a warning");
        assert!(
            warning.starts_with("warning: 75 % of the validation tokens are <unk>"),
            "{warning}"
        );
        write("valid.txt", "the cat sat\nthe mat\n");
        let corpus = LmCorpus::word_level(dir.path(), &VocabularyOptions::default()).unwrap();
        assert_eq!(unknown_words_warning(&corpus), None);
    }
}
