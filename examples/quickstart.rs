//! The shortest complete program: RAdam trains a small classifier through Burn's `LearnerBuilder`.
//!
//! ```text
//! cargo run --release --example quickstart              # CPU (ndarray)
//! cargo run --release --example quickstart -- wgpu      # GPU (wgpu)
//! ```
#![recursion_limit = "256"]

use burn::data::dataloader::DataLoaderBuilder;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{LearnerBuilder, LearningStrategy};
use radam_burn::RAdamConfig;
use radam_train::backend::{NdArrayBackend, WgpuBackend, wgpu_device};
use radam_train::datasets::spirals::{PointBatcher, SpiralsDataset};
use radam_train::models::mlp::{MlpClassifier, MlpClassifierConfig};
use radam_train::renderer::PlainRenderer;

/// Trains the classifier for `epochs` epochs and returns it; checkpoints and metric logs go to
/// `artifact_dir`.
pub fn train<B: AutodiffBackend>(
    device: B::Device,
    artifact_dir: &str,
    epochs: usize,
) -> MlpClassifier<B::InnerBackend> {
    B::seed(&device, 0);
    // Three interleaved spirals: a linear model gets about 1/3 right, a small MLP nearly all.
    let train = DataLoaderBuilder::new(PointBatcher)
        .batch_size(32)
        .shuffle(0)
        .build(SpiralsDataset::new(3, 1000, 0.05, 0));
    let valid = DataLoaderBuilder::new(PointBatcher)
        .batch_size(256)
        .build(SpiralsDataset::new(3, 300, 0.05, 1));

    let learner = LearnerBuilder::new(artifact_dir)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        // Full precision: f16 checkpoints would lose RAdam's small second moments.
        .with_file_checkpointer(DefaultRecorder::new())
        .learning_strategy(LearningStrategy::SingleDevice(device.clone()))
        .num_epochs(epochs)
        .renderer(PlainRenderer::new())
        .summary()
        // RAdam needs no warmup: a constant learning rate from the first step.
        .build(
            MlpClassifierConfig::new(2, 3).init::<B>(&device),
            RAdamConfig::new().init(),
            1e-2,
        );

    learner.fit(train, valid).model
}

#[allow(dead_code)] // tests/quickstart.rs includes this file and calls `train` only
fn main() {
    let (dir, epochs) = ("artifacts/quickstart", 8);
    match std::env::args().nth(1).as_deref() {
        None | Some("ndarray") => drop(train::<NdArrayBackend>(Default::default(), dir, epochs)),
        Some("wgpu") => match wgpu_device() {
            Ok(device) => drop(train::<WgpuBackend>(device, dir, epochs)),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(2);
            }
        },
        Some(other) => {
            eprintln!("error: unknown backend `{other}`; expected `ndarray` or `wgpu`");
            std::process::exit(2);
        }
    }
}
