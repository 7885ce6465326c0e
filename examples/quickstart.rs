//! The shortest complete program: RAdam trains a small classifier through Burn's `LearnerBuilder`.
//!
//! ```text
//! cargo run --release --example quickstart              # CPU (ndarray)
//! cargo run --release --example quickstart -- wgpu      # GPU (wgpu)
//! cargo run --release --example quickstart -- wgpu 2    # two GPUs, data-parallel
//! ```
#![recursion_limit = "256"]

use burn::collective::CollectiveConfig;
use std::sync::Arc;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{LearnerBuilder, LearningStrategy};
use radam_burn::RAdamConfig;
use radam_train::backend::{NdArrayBackend, WgpuBackend, wgpu_devices};
use radam_train::datasets::spirals::{PointBatcher, PointItem, SpiralsDataset};
use radam_train::distributed::{ReplicaLayout, ReplicaShards};
use radam_train::models::mlp::{MlpClassifier, MlpClassifierConfig};
use radam_train::renderer::PlainRenderer;

/// Trains the classifier for `epochs` epochs on `devices` (several: data-parallel, one replica
/// per device, each with its half of every epoch) and returns it; checkpoints and metric logs go
/// to `artifact_dir`.
pub fn train<B: AutodiffBackend>(
    devices: Vec<B::Device>,
    artifact_dir: &str,
    epochs: usize,
) -> MlpClassifier<B::InnerBackend> {
    let device = devices[0].clone();
    B::seed(&device, 0);
    // Three interleaved spirals: a linear model gets about 1/3 right, a small MLP nearly all.
    let points: Arc<dyn Dataset<PointItem>> = Arc::new(SpiralsDataset::new(3, 1000, 0.05, 0));
    // Burn's DDP cuts the loader into one slice per device. Every slice must give the same
    // number of steps, or the last all-reduce waits forever: deal the points out evenly.
    let layout = ReplicaLayout {
        devices: devices.len(),
        ..ReplicaLayout::SINGLE
    };
    let train = DataLoaderBuilder::new(PointBatcher)
        .batch_size(32)
        .shuffle(0)
        .build(ReplicaShards::new(points, layout));
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
        .learning_strategy(if devices.len() > 1 {
            // Burn's DDP: gradients averaged over the replicas after every step.
            burn::train::ddp(devices, CollectiveConfig::default())
        } else {
            LearningStrategy::SingleDevice(device.clone())
        })
        .num_epochs(epochs)
        .renderer(PlainRenderer::new())
        .summary()
        // RAdam needs no warmup: a constant learning rate from the first step.
        .build(
            MlpClassifierConfig::new(2, 3).init::<B>(&device),
            RAdamConfig::new().init(),
            1e-2,
        );

    let model = learner.fit(train, valid).model;
    if layout.devices > 1 {
        // Burn's DDP leaves its replicas registered: reset, so that this process can run again.
        burn::collective::reset_collective::<B::InnerBackend>();
    }
    model
}

/// `quickstart [ndarray|wgpu] [DEVICES]`.
#[allow(dead_code)] // tests/quickstart.rs includes this file and calls `train` only
fn main() {
    let fail = |message: String| -> ! {
        eprintln!("error: {message}");
        std::process::exit(2)
    };
    let (dir, epochs) = ("artifacts/quickstart", 8);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = match args.get(1).map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(count)) if count > 0 => count,
        Some(_) => fail(format!(
            "`{}`: the device count must be a positive number",
            args[1]
        )),
    };
    match args.first().map(String::as_str) {
        None | Some("ndarray") => drop(train::<NdArrayBackend>(
            vec![Default::default(); count],
            dir,
            epochs,
        )),
        Some("wgpu") => match wgpu_devices(count, 0) {
            Ok(devices) => drop(train::<WgpuBackend>(devices, dir, epochs)),
            Err(error) => fail(error),
        },
        Some(other) => fail(format!(
            "unknown backend `{other}`; expected `ndarray` or `wgpu`"
        )),
    }
}
