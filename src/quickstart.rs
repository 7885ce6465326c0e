//! The quickstart: RAdam trains a small classifier through Burn's `LearnerBuilder` — the
//! shortest complete program, and [`train`] is the snippet to copy into your own.
//!
//! `examples/quickstart.rs` runs it:
//!
//! ```text
//! cargo run --release --example quickstart              # CPU (ndarray)
//! cargo run --release --example quickstart -- wgpu      # GPU (wgpu)
//! cargo run --release --example quickstart -- wgpu 2    # two GPUs, data-parallel
//! ```
//!
//! It lives in the library so that the example builds in seconds: a program that compiles
//! `LearnerBuilder` for its own model on both backends spends about five minutes of a release
//! build on it (two cores), since rustc shares no generic code between crates at
//! `opt-level = 3`. Your own program will pay that once, for the backends it names.

use std::sync::Arc;

use burn::collective::CollectiveConfig;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{LearnerBuilder, LearningStrategy};
use radam_burn::RAdamConfig;

use crate::backend::{NdArrayBackend, WgpuBackend, wgpu_devices};
use crate::datasets::spirals::{PointBatcher, PointItem, SpiralsDataset};
use crate::distributed::{ReplicaLayout, ReplicaShards};
use crate::models::mlp::{MlpClassifier, MlpClassifierConfig};
use crate::renderer::PlainRenderer;

/// Where the example's run leaves its checkpoints and metric logs.
pub const ARTIFACT_DIR: &str = "artifacts/quickstart";
/// The example's epochs.
pub const EPOCHS: usize = 8;

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

/// The example's command line, `[ndarray|wgpu] [DEVICES]`: trains for [`EPOCHS`] epochs into
/// [`ARTIFACT_DIR`] on the backend and number of devices it names (ndarray and one device by
/// default).
///
/// # Errors
/// An unknown backend, a device count that is not a positive number, or no usable wgpu
/// adapter, in one line.
pub fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!(
            "usage: quickstart [ndarray|wgpu] [DEVICES]\n\nTrains a small classifier with RAdam \
             through Burn's LearnerBuilder for {EPOCHS} epochs into {ARTIFACT_DIR}, on the CPU \
             (ndarray, the default) or on DEVICES GPUs (wgpu)."
        );
        return Ok(());
    }
    // Not generic, so that the example reuses this crate's compiled training code.
    let count = match args.get(1).map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(count)) if count > 0 => count,
        Some(_) => {
            return Err(format!(
                "`{}`: the device count must be a positive number",
                args[1]
            ));
        }
    };
    match args.first().map(String::as_str) {
        None | Some("ndarray") => drop(train::<NdArrayBackend>(
            vec![Default::default(); count],
            ARTIFACT_DIR,
            EPOCHS,
        )),
        Some("wgpu") => drop(train::<WgpuBackend>(
            wgpu_devices(count, 0)?,
            ARTIFACT_DIR,
            EPOCHS,
        )),
        Some(other) => {
            return Err(format!(
                "unknown backend `{other}`; expected `ndarray` or `wgpu`"
            ));
        }
    }
    Ok(())
}
