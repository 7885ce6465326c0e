//! A small model trained by Burn 0.22's `SupervisedTraining` with RAdam, then with Ranger (RAdam +
//! Lookahead), on the flex CPU backend (and on wgpu, where an adapter exists, with the `wgpu`
//! feature), with RAdam's rectification term `r_t` as a training metric: the file to copy into a
//! Burn 0.22 project.
//!
//! ```sh
//! cargo run --release -p radam-burn-022 --example train_with_radam
//! cargo run --release -p radam-burn-022 --example train_with_radam --features wgpu
//! ```
//!
//! In a terminal Burn's dashboard plots the loss and `r_t` live (elsewhere Burn prints its
//! progress line by line); the table printed after each run lists each metric per split. The run
//! directories (checkpoints, metric logs) are under `artifacts/radam-burn-022-example/`.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::constant::ConstantLr;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData, TensorReadError};
use burn::train::metric::{
    LossMetric, Metric, MetricMetadata, MetricName, Numeric, NumericEntry, SerializedEntry,
};
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};
use radam_burn_022::{LookaheadConfig, RAdamConfig, RangerConfig, rectification, rho};

/// Inputs per example.
const INPUTS: usize = 8;

/// `Linear → ReLU → Linear`.
#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    activation: Relu,
    output: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(INPUTS, 64).init(device),
            activation: Relu::new(),
            output: LinearConfig::new(64, 1).init(device),
        }
    }

    fn regression(&self, batch: Batch) -> RegressionOutput {
        let prediction = self
            .output
            .forward(self.activation.forward(self.hidden.forward(batch.x)));
        let loss = (prediction.clone() - batch.y.clone()).powi_scalar(2).mean();
        RegressionOutput::new(loss, prediction, batch.y)
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

#[derive(Clone, Debug)]
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

/// Example `i`: inputs from a formula, target `y = sin(x0 + x1) + x2·x3 − 0.5·x4`.
struct Procedural;

impl Batcher<usize, Batch> for Procedural {
    fn batch(&self, items: Vec<usize>, device: &Device) -> Batch {
        let x: Vec<f32> = items
            .iter()
            .flat_map(|&i| (0..INPUTS).map(move |j| ((i * 7 + j * 31) % 29) as f32 / 14.0 - 1.0))
            .collect();
        let y: Vec<f32> = x
            .chunks(INPUTS)
            .map(|x| (x[0] + x[1]).sin() + x[2] * x[3] - 0.5 * x[4])
            .collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [items.len(), INPUTS]), device),
            y: Tensor::from_data(TensorData::new(y, [items.len(), 1]), device),
        }
    }
}

fn loader(examples: std::ops::Range<usize>) -> Arc<dyn DataLoader<Batch>> {
    DataLoaderBuilder::new(Procedural)
        .batch_size(32)
        .shuffle(0)
        .build(InMemDataset::new(examples.collect()))
}

/// RAdam's rectification term `r_t` (Eq. 6 of the paper) at the step just taken, and 0 while
/// `ρ_t` is at or below the threshold (RAdam's momentum phase). `r_t` depends on the step `t`
/// and `β2` only, so the metric counts the optimizer's steps itself (Burn's iteration counter
/// restarts every epoch).
#[derive(Clone)]
struct RectificationMetric {
    name: MetricName,
    beta_2: f64,
    threshold: f64,
    steps: usize,
    current: f64,
}

impl RectificationMetric {
    fn new(config: &RAdamConfig) -> Self {
        Self {
            name: Arc::new("RAdam r_t".to_string()),
            beta_2: radam_burn_022::widen(config.beta_2),
            threshold: config.threshold,
            steps: 0,
            current: 0.0,
        }
    }
}

impl Metric for RectificationMetric {
    type Input = ();

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, _: &(), _: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        self.steps += 1;
        let t = self.steps;
        let formatted = match rectification(self.beta_2, t, self.threshold) {
            Some(r_t) => {
                self.current = r_t;
                format!("{r_t:.4} (step {t})")
            }
            None => {
                self.current = 0.0;
                format!("momentum phase (ρ_t {:.3}, step {t})", rho(self.beta_2, t))
            }
        };
        Ok(SerializedEntry::new(formatted, self.current.to_string()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        let formatted = format!("{:.4} (step {})", self.current, self.steps);
        Ok(SerializedEntry::new(formatted, self.current.to_string()))
    }

    /// Keeps the step count: `r_t` follows the optimizer's steps across epochs.
    fn clear(&mut self) {}
}

impl Numeric for RectificationMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(NumericEntry::Value(self.current))
    }

    fn running_value(&self) -> Option<NumericEntry> {
        self.value()
    }

    fn final_value(&self) -> NumericEntry {
        NumericEntry::Value(self.current)
    }
}

/// Epochs of each run.
const EPOCHS: usize = 8;

/// Trains a fresh model for [`EPOCHS`] with `optimizer` (whose RAdam is configured by `radam`);
/// the final validation loss.
fn train(name: &str, radam: &RAdamConfig, optimizer: ModuleOptimizer, device: &Device) -> f32 {
    let dir = format!("artifacts/radam-burn-022-example/{name}");
    // A fresh run each time (a run directory with checkpoints would otherwise be resumed).
    let _ = std::fs::remove_dir_all(&dir);
    let learner = Learner::new(Mlp::new(device), optimizer, ConstantLr::new(1e-2));
    let result = SupervisedTraining::new(&dir, loader(0..512), loader(512..640))
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(RectificationMetric::new(radam))
        .with_default_checkpointers()
        .num_epochs(EPOCHS)
        .summary()
        .launch(learner);
    let batch = Procedural.batch((512..640).collect(), device);
    let loss = result.model.regression(batch).loss;
    loss.into_data().try_to_vec::<f32>().unwrap()[0]
}

/// RAdam, then Ranger, on `device`; prints both validation losses.
fn compare(label: &str, device: &Device) {
    // The optimizer steps the parameters' inner tensors, on the device without autodiff.
    let kernel = radam_burn_022::fused_kernel_on(&device.clone().without_autodiff());
    println!(
        "{label}: RAdam's step runs as {}",
        kernel.map_or("Burn tensor operations".to_string(), |name| format!(
            "the fused {name} kernel"
        ))
    );
    let radam = RAdamConfig::new().with_weight_decay(1e-4);
    let radam_loss = train(&format!("{label}-radam"), &radam, radam.init(), device);
    let ranger = RangerConfig::new(radam.clone(), LookaheadConfig::new());
    let ranger_loss = train(
        &format!("{label}-ranger"),
        &ranger.radam,
        ranger.init(),
        device,
    );
    println!(
        "{label}: validation loss after {EPOCHS} epochs: RAdam {radam_loss:.4}, Ranger {ranger_loss:.4}"
    );
}

fn main() {
    // `Device::flex()` is Burn 0.22's pure-Rust CPU backend; `.autodiff()` records gradients.
    compare("flex", &Device::flex().autodiff());

    // The same code on a GPU, where wgpu finds an adapter (Vulkan, Metal, DirectX, or Mesa's
    // lavapipe on a CPU).
    #[cfg(feature = "wgpu")]
    match Device::wgpu_options().init() {
        Ok(device) => compare("wgpu", &device.autodiff()),
        Err(error) => println!("wgpu: no adapter ({error}); trained on flex only"),
    }
}
