//! LSTM language model on a PTB / WikiText / One Billion Word directory or the built-in corpus.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::LossMetric;
use radam_datasets::batch::LmBatch;
use radam_datasets::lm::{BpttDataset, LmBatcher, LmCorpus, VocabularyOptions};
use radam_models::lstm_lm::LstmLmConfig;
use radam_models::metrics::TokenPerplexityMetric;

use super::{OnBackend, on_backend};
use crate::harness::{
    HarnessError, RunReport, ScheduleKind, Session, SizePreset, TaskDefaults, TrainArgs,
};

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
        SizePreset::Small => (3, 32),
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
    let session = Session::open(&args.train, &defaults(args.train.size))?;
    if args.bptt == Some(0) {
        return Err(HarnessError::Invalid(
            "--bptt must be at least 1".to_string(),
        ));
    }
    on_backend(session.placement(), LmTask { args, session })
}

struct LmTask {
    args: LmArgs,
    session: Session,
}

impl LmTask {
    fn corpus(&self) -> Result<LmCorpus, HarnessError> {
        let Some(dir) = &self.session.settings().data_dir else {
            let tokens = self.args.tokens.unwrap_or(match self.args.train.size {
                SizePreset::Tiny => 12_000,
                SizePreset::Small => 150_000,
                SizePreset::Paper => 2_000_000,
            });
            let corpus = LmCorpus::builtin(tokens, self.args.train.seed)?;
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
        let (config, bptt) = match settings.size {
            SizePreset::Tiny => (
                LstmLmConfig::small(vocab)
                    .with_d_embedding(32)
                    .with_d_hidden(64),
                self.args.bptt.unwrap_or(20),
            ),
            SizePreset::Small => (LstmLmConfig::small(vocab), self.args.bptt.unwrap_or(35)),
            SizePreset::Paper => (LstmLmConfig::paper(vocab), self.args.bptt.unwrap_or(20)),
        };
        config.validate().map_err(HarnessError::Invalid)?;
        // Rows continue each other from batch to batch: no shuffling (state is carried). With
        // several replicas the rows of the whole step's batch are dealt out among them, so
        // each replica keeps continuing its own rows.
        let replicas = settings.replicas();
        let train = BpttDataset::new(corpus.train.clone(), settings.batch_size * replicas, bptt)?;
        let valid = BpttDataset::new(corpus.valid.clone(), settings.batch_size, bptt)?;
        let steps_per_epoch = train.batches();
        let train = self.session.shard(Arc::new(train))?;
        let train_loader: Arc<dyn DataLoader<B, LmBatch<B>>> = DataLoaderBuilder::new(LmBatcher)
            .batch_size(settings.batch_size)
            .build(train);
        let valid_loader = DataLoaderBuilder::new(LmBatcher)
            .batch_size(settings.batch_size)
            .build(valid);

        B::seed(&device, settings.seed);
        let model = config.init::<B>(&device);
        self.session.say(format!(
            "LSTM LM {}×{} ({} parameters), {} {}, {} epochs of {steps_per_epoch} steps",
            config.num_layers,
            config.d_hidden,
            burn::module::Module::num_params(&model),
            settings.optimizer.kind,
            settings.lr,
            settings.epochs
        ));
        let trained = self.session.fit(
            devices,
            model,
            train_loader,
            valid_loader,
            steps_per_epoch,
            |builder| {
                builder
                    .metric_train_numeric(LossMetric::new())
                    .metric_valid_numeric(LossMetric::new())
                    .metric_train_numeric(TokenPerplexityMetric::new())
                    .metric_valid_numeric(TokenPerplexityMetric::new())
            },
        )?;
        let results = corpus
            .optimal_perplexity
            .map(|best| {
                vec![(
                    "best possible perplexity (built-in corpus)".to_string(),
                    best,
                )]
            })
            .unwrap_or_default();
        let report = RunReport::new(&self.session, &trained, results);
        report.print();
        Ok(report)
    }
}
