//! RAdam, Ranger and Adam-2k in Burn 0.22's trainer: a small regression model trained by
//! `SupervisedTraining` with a `Learner` whose optimizer is `RAdamConfig::init()` (and
//! `RangerConfig`'s, `Adam2kConfig`'s), on both CPU backends and, with the `wgpu` feature, on wgpu
//! (the fused CubeCL step in Burn's fusion stream). The loss falls, and a run resumed from its
//! epoch-3 checkpoint ends with the same weights, bit for bit, as the run that was never
//! interrupted (the optimizer's record carries `m_t`, `v_t` and `t`, and Ranger's slow weights and
//! its place in the cycle of `k`: epoch 3 ends at step 24, four steps into a cycle of 5).

mod common;

use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::constant::ConstantLr;
use burn::module::{Module, Param};
use burn::optim::ModuleOptimizer;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::LossMetric;
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};
use radam_burn_022::{Adam2kConfig, LookaheadConfig, RAdamConfig, RangerConfig};

const INPUTS: usize = 4;
const HIDDEN: usize = 16;
const EXAMPLES: usize = 64;

/// `relu(x·W1 + b1)·W2`, with weights set from a formula (no random initialisation, so that
/// every run starts from the same point on every backend).
#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
}

fn fixed(len: usize, salt: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 37 + salt * 11) % 23) as f32 / 11.0 - 1.0) * scale)
        .collect()
}

impl Mlp {
    fn new(device: &Device) -> Self {
        let data = |values: Vec<f32>, shape: Vec<usize>| TensorData::new(values, shape);
        Self {
            w1: Param::from_data(
                data(fixed(INPUTS * HIDDEN, 1, 0.5), vec![INPUTS, HIDDEN]),
                device,
            ),
            b1: Param::from_data(data(fixed(HIDDEN, 2, 0.1), vec![HIDDEN]), device),
            w2: Param::from_data(data(fixed(HIDDEN, 3, 0.5), vec![HIDDEN, 1]), device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let hidden = relu(x.matmul(self.w1.val()) + self.b1.val().unsqueeze());
        hidden.matmul(self.w2.val())
    }

    fn regression(&self, batch: Batch) -> RegressionOutput {
        let output = self.forward(batch.x);
        let loss = (output.clone() - batch.y.clone()).powi_scalar(2).mean();
        RegressionOutput::new(loss, output, batch.y)
    }

    /// The mean squared error over the whole data set.
    fn loss(&self, device: &Device) -> f32 {
        let batch = RegressionBatcher.batch((0..EXAMPLES).collect(), device);
        let loss = self.regression(batch).loss;
        loss.into_data().try_to_vec::<f32>().unwrap()[0]
    }
}

#[derive(Clone, Debug)]
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

/// Example `i`: inputs from a formula, target `y = x0·x1 − sin(x2) + 0.5·x3`.
struct RegressionBatcher;

impl Batcher<usize, Batch> for RegressionBatcher {
    fn batch(&self, items: Vec<usize>, device: &Device) -> Batch {
        let x: Vec<f32> = items
            .iter()
            .flat_map(|&i| (0..INPUTS).map(move |j| (((i * 5 + j * 13) % 17) as f32 / 8.0) - 1.0))
            .collect();
        let y: Vec<f32> = x
            .chunks(INPUTS)
            .map(|x| x[0] * x[1] - x[2].sin() + 0.5 * x[3])
            .collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [items.len(), INPUTS]), device),
            y: Tensor::from_data(TensorData::new(y, [items.len(), 1]), device),
        }
    }
}

impl TrainStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
        let output = self.regression(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

fn loader() -> Arc<dyn DataLoader<Batch>> {
    DataLoaderBuilder::new(RegressionBatcher)
        .batch_size(8)
        .build(InMemDataset::new((0..EXAMPLES).collect()))
}

/// Trains up to `epochs` in `dir` with the optimizer `optimizer` builds, from scratch or from the
/// checkpoint of epoch `resume_from`.
fn train(
    dir: &Path,
    device: &Device,
    optimizer: fn() -> ModuleOptimizer,
    epochs: usize,
    resume_from: Option<usize>,
) -> Mlp {
    let learner = Learner::new(Mlp::new(device), optimizer(), ConstantLr::new(1e-2));
    let mut training = SupervisedTraining::new(dir, loader(), loader())
        .num_epochs(epochs)
        .with_default_checkpointers()
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(epochs))
        .with_metric_logger(InMemoryMetricLogger::new())
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .with_application_logger(None);
    if let Some(epoch) = resume_from {
        training = training.checkpoint(epoch);
    }
    training.launch(learner).model
}

fn bits(model: &Mlp) -> Vec<u32> {
    [
        model.w1.val().flatten::<1>(0, 1),
        model.b1.val(),
        model.w2.val().flatten::<1>(0, 1),
    ]
    .into_iter()
    .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
    .map(f32::to_bits)
    .collect()
}

/// Trains 6 epochs (48 steps) straight, and 3 then 3 more resumed from the checkpoint, on both
/// CPU backends (and wgpu with the `wgpu` feature): the loss must fall below `falls_to` times its
/// start, and the two runs must end bit-identical.
fn trains_in_the_learner_and_resumes_bit_identically(
    name: &str,
    optimizer: fn() -> ModuleOptimizer,
    falls_to: f32,
) {
    // wgpu with the `wgpu` feature: the fused CubeCL step inside Burn's fusion stream.
    for device in common::devices() {
        let device = device.autodiff();
        let root = std::env::temp_dir().join(format!(
            "radam-burn-022-learner-{name}-{}-{:?}",
            std::process::id(),
            device
        ));
        let _ = std::fs::remove_dir_all(&root);
        let before = Mlp::new(&device).loss(&device);

        let straight = train(&root.join("straight"), &device, optimizer, 6, None);
        let after = straight.loss(&device);
        assert!(
            after < falls_to * before,
            "{name}, {device:?}: the loss fell from {before} only to {after} in 48 steps"
        );

        let interrupted = root.join("interrupted");
        train(&interrupted, &device, optimizer, 3, None);
        let resumed = train(&interrupted, &device, optimizer, 6, Some(3));
        assert_eq!(
            bits(&resumed),
            bits(&straight),
            "{name}, {device:?}: the resumed run's weights differ from the uninterrupted run's"
        );
        println!(
            "{name}, {device:?}: training loss {before} -> {after}, resumed run bit-identical"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn radam_trains_in_the_learner_and_resumes_bit_identically() {
    trains_in_the_learner_and_resumes_bit_identically(
        "radam",
        || RAdamConfig::new().with_weight_decay(1e-4).init(),
        0.5,
    );
}

#[test]
fn ranger_trains_in_the_learner_and_resumes_bit_identically() {
    trains_in_the_learner_and_resumes_bit_identically(
        "ranger",
        || RangerConfig::new(RAdamConfig::new(), LookaheadConfig::new()).init(),
        0.75,
    ); // α = 0.5 keeps about half of each cycle's progress
}

#[test]
fn adam_2k_trains_in_the_learner_and_resumes_bit_identically() {
    // v_t alone for the first 10 steps (of 48), so that the resumed run starts after them.
    trains_in_the_learner_and_resumes_bit_identically(
        "adam-2k",
        || {
            Adam2kConfig::new()
                .with_frozen_steps(10)
                .with_weight_decay(1e-4)
                .init()
        },
        0.5,
    );
}
