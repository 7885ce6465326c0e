//! Data-parallel RAdam on two local ndarray devices through Burn's DDP and `LearnerBuilder`:
//! after every step both replicas hold identical θ, m_t and v_t, and the run equals
//! single-device training with the doubled batch. With the `mpi` feature, also two processes
//! under `mpirun` ([`multi_node`]).
#![recursion_limit = "256"]

mod common;
#[cfg(feature = "mpi")]
mod multi_node;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use burn::backend::ndarray::NdArrayDevice;
use burn::collective::CollectiveConfig;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::train::metric::LossMetric;
use burn::train::{LearnerBuilder, LearningStrategy};
use radam_burn::{RAdam, RAdamConfig, RAdamState};
use radam_train::backend::NdArrayBackend;
use radam_train::datasets::spirals::{PointBatcher, SpiralsDataset};
use radam_train::distributed::{ReplicaLayout, ReplicaShards, flatten_module};
use radam_train::models::mlp::{MlpClassifier, MlpClassifierConfig};
use radam_train::renderer::QuietRenderer;
use radam_train::schedule::{Decay, Schedule};

type B = NdArrayBackend;
type Model = MlpClassifier<B>;
type Inner = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
type Adaptor = OptimizerAdaptor<RAdam, Model, B>;

/// θ, m_t and v_t of one replica after one step.
#[derive(Clone, Debug)]
struct Snapshot {
    thread: ThreadId,
    time: usize,
    lr: f64,
    theta: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// RAdam that records every replica's state after each of its steps.
#[derive(Clone)]
struct Recording {
    inner: Adaptor,
    log: Arc<Mutex<Vec<Snapshot>>>,
}

struct Moments<'a> {
    record: &'a <Adaptor as Optimizer<Model, B>>::Record,
    time: usize,
    m: Vec<f32>,
    v: Vec<f32>,
}

fn values<const D: usize>(tensor: Tensor<Inner, D>) -> Vec<f32> {
    tensor.into_data().to_vec().unwrap()
}

impl ModuleVisitor<B> for Moments<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let state: RAdamState<Inner, D> = self.record[&param.id].clone().into_state::<D>();
        self.time = state.time;
        self.m.extend(values(state.m));
        self.v.extend(values(state.v));
    }
}

impl Optimizer<Model, B> for Recording {
    type Record = <Adaptor as Optimizer<Model, B>>::Record;

    fn step(&mut self, lr: f64, module: Model, grads: GradientsParams) -> Model {
        let module = self.inner.step(lr, module, grads);
        let record = self.inner.to_record();
        let mut moments = Moments {
            record: &record,
            time: 0,
            m: Vec::new(),
            v: Vec::new(),
        };
        module.visit(&mut moments);
        self.log.lock().unwrap().push(Snapshot {
            thread: std::thread::current().id(),
            time: moments.time,
            lr,
            theta: flatten_module(&module, |_| true).values,
            m: moments.m,
            v: moments.v,
        });
        module
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
            log: self.log,
        }
    }
}

const STEPS_PER_EPOCH: usize = 6;
const EPOCHS: usize = 2;

/// Trains the spirals MLP for two epochs on `devices` CPU replicas with `batch` items each and
/// returns the final weights and every replica's snapshots.
fn train(devices: usize, batch: usize, dir: &Path) -> (Vec<f32>, Vec<Snapshot>) {
    let device = NdArrayDevice::Cpu;
    // 6 steps of 32 items per epoch, in a fixed order (no shuffling, no dropout).
    let data: Arc<dyn Dataset<_>> = Arc::new(SpiralsDataset::new(3, 64, 0.05, 3));
    let layout = ReplicaLayout {
        nodes: 1,
        node_rank: 0,
        devices,
    };
    let data: Arc<dyn Dataset<_>> = Arc::new(ReplicaShards::new(data, layout));
    let train = DataLoaderBuilder::new(PointBatcher)
        .batch_size(batch)
        .build(data);
    let valid = DataLoaderBuilder::new(PointBatcher)
        .batch_size(64)
        .build(SpiralsDataset::new(3, 20, 0.05, 4));

    B::seed(&device, 11);
    let model: Model = MlpClassifierConfig::new(2, 3)
        .with_d_hidden(16)
        .init(&device);
    // Warmup then linear decay: the rate changes every step, so a schedule that advanced once
    // per replica instead of once per step would show.
    let schedule = Schedule::new(
        0.01,
        4,
        Decay::Linear {
            total_steps: EPOCHS * STEPS_PER_EPOCH + 2,
        },
    )
    .unwrap()
    .with_calls_per_step(devices);
    let strategy = if devices > 1 {
        burn::train::ddp(vec![device; devices], CollectiveConfig::default())
    } else {
        LearningStrategy::SingleDevice(device)
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let optimizer = Recording {
        inner: RAdamConfig::new().init(),
        log: log.clone(),
    };
    let learner = LearnerBuilder::new(dir)
        .learning_strategy(strategy)
        .num_epochs(EPOCHS)
        .with_application_logger(None)
        .metric_train_numeric(LossMetric::new())
        .renderer(QuietRenderer)
        .build(model, optimizer, schedule);
    let model = learner.fit(train, valid).model;
    let log = log.lock().unwrap().clone();
    (flatten_module(&model, |_| true).values, log)
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn two_devices_keep_identical_replicas_and_equal_the_doubled_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (single_weights, single_log) = train(1, 32, &dir.path().join("single"));
    let (ddp_weights, ddp_log) = train(2, 16, &dir.path().join("ddp"));

    // Two replicas, each with its own optimizer, each taking every step.
    let steps = EPOCHS * STEPS_PER_EPOCH;
    assert_eq!(single_log.len(), steps);
    let mut replicas: Vec<ThreadId> = ddp_log.iter().map(|s| s.thread).collect();
    replicas.dedup();
    replicas.sort_by_key(|id| format!("{id:?}"));
    replicas.dedup();
    assert_eq!(replicas.len(), 2, "expected two replicas");
    let per_replica: Vec<Vec<&Snapshot>> = replicas
        .iter()
        .map(|id| ddp_log.iter().filter(|s| s.thread == *id).collect())
        .collect();

    let mut worst_vs_single = 0.0f32;
    for step in 0..steps {
        let (a, b) = (per_replica[0][step], per_replica[1][step]);
        // Identical replicas: θ, m_t and v_t bit for bit, the same t and learning rate.
        assert_eq!(a.time, step + 1);
        assert_eq!((a.time, a.lr), (b.time, b.lr), "step {}", step + 1);
        assert_eq!(
            a.theta,
            b.theta,
            "θ differs between replicas at step {}",
            step + 1
        );
        assert_eq!(
            a.m,
            b.m,
            "m_t differs between replicas at step {}",
            step + 1
        );
        assert_eq!(
            a.v,
            b.v,
            "v_t differs between replicas at step {}",
            step + 1
        );
        // The same step as one device with the doubled batch.
        let single = &single_log[step];
        assert_eq!(single.lr, a.lr, "learning rate at step {}", step + 1);
        for (name, x, y) in [
            ("θ", &a.theta, &single.theta),
            ("m_t", &a.m, &single.m),
            ("v_t", &a.v, &single.v),
        ] {
            let difference = max_difference(x, y);
            let scale = y.iter().fold(0.0f32, |acc, v| acc.max(v.abs()));
            assert!(
                difference <= 1e-5 * scale.max(1.0),
                "{name} at step {}: {difference} from single-device training",
                step + 1
            );
            if name == "θ" {
                worst_vs_single = worst_vs_single.max(difference);
            }
        }
    }
    let final_difference = max_difference(&ddp_weights, &single_weights);
    println!(
        "2 devices × batch 16 vs 1 device × batch 32, {steps} RAdam steps: largest θ difference \
         {worst_vs_single:e} (final weights {final_difference:e})"
    );
    assert!(final_difference < 1e-5, "{final_difference}");
    // Training did something.
    assert!(max_difference(&single_weights, &single_log[0].theta) > 1e-3);
}
