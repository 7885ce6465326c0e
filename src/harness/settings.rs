//! A run's settings: the flags resolved against a task's defaults, saved as `run.json`, and what
//! differs between two runs' settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data_fingerprint::DataFingerprint;
use super::flags::{SizePreset, TrainArgs};
use crate::backend::BackendKind;
use crate::harness::optimizer_choice::{OptimizerKind, OptimizerSettings};
use crate::schedule::ScheduleKind;

/// A task's defaults for the flags a user may leave out.
#[derive(Clone, Debug)]
pub struct TaskDefaults {
    /// Short name, used for the artifact directory (`cifar`, `lm`, `nmt`).
    pub name: &'static str,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate of the adaptive optimizers.
    pub adaptive_lr: f64,
    /// Learning rate of SGD.
    pub sgd_lr: f64,
    /// Weight decay.
    pub weight_decay: f32,
    /// Schedule.
    pub schedule: ScheduleKind,
    /// β2 of the adaptive optimizers.
    pub beta_2: f32,
}

/// A run's fully resolved settings, saved as `run.json` so that `--resume` can refuse to mix
/// runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The task.
    pub task: String,
    /// Backend.
    pub backend: BackendKind,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerSettings,
    /// Base learning rate.
    pub lr: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// Warmup as a fraction of the run's steps (instead of `warmup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ratio: Option<f64>,
    /// Schedule.
    pub schedule: ScheduleKind,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Seed.
    pub seed: u64,
    /// Size preset.
    pub size: SizePreset,
    /// The data directory, if not built-in.
    pub data_dir: Option<PathBuf>,
    /// Local devices (data-parallel).
    #[serde(default = "one")]
    pub devices: usize,
    /// Processes of a multi-node run.
    #[serde(default = "one")]
    pub nodes: usize,
    /// The task's own flags that shape the model or the data.
    #[serde(default)]
    pub task_options: TaskOptions,
    /// What the data was when the run took its directory over (absent in runs from before
    /// fingerprints): compared by `--resume`, never part of the settings' equality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataFingerprint>,
}

fn one() -> usize {
    1
}

/// A task's own flags that shape its model or its data (`--depth`, `--bptt`, `--bpe-vocab`, …),
/// by flag name, with their resolved values.
pub type TaskOptions = BTreeMap<String, String>;

impl RunSettings {
    /// Replicas of the model that train together: `devices · nodes`. Every step sees
    /// `replicas · batch_size` items.
    pub fn replicas(&self) -> usize {
        self.devices * self.nodes
    }

    /// The warmup steps of a run of `total_steps`: `--warmup`, or `--warmup-ratio` of them.
    pub fn warmup_steps(&self, total_steps: usize) -> usize {
        match self.warmup_ratio {
            Some(ratio) => (ratio * total_steps as f64).round() as usize,
            None => self.warmup,
        }
    }

    /// `args` resolved against the task's `defaults`.
    pub(super) fn resolve(
        args: &TrainArgs,
        defaults: &TaskDefaults,
        task_options: TaskOptions,
    ) -> Self {
        let lr = args.lr.unwrap_or(match args.optimizer {
            OptimizerKind::Sgd => defaults.sgd_lr,
            _ => defaults.adaptive_lr,
        });
        // PyTorch's ε unless set: one default, in `OptimizerSettings::new`.
        let base = OptimizerSettings::new(
            args.optimizer,
            args.weight_decay.unwrap_or(defaults.weight_decay),
        );
        Self {
            task: defaults.name.to_string(),
            backend: args.backend,
            optimizer: OptimizerSettings {
                beta_2: args.beta_2.unwrap_or(defaults.beta_2),
                epsilon: args.epsilon.unwrap_or(base.epsilon),
                frozen_steps: args.frozen_steps.unwrap_or(base.frozen_steps),
                radam: args.radam,
                decoupled_weight_decay: args.decoupled_weight_decay,
                ..base
            },
            lr,
            warmup: args.warmup,
            warmup_ratio: args.warmup_ratio,
            schedule: args.schedule.unwrap_or(defaults.schedule),
            epochs: args.epochs.unwrap_or(defaults.epochs),
            batch_size: args.batch_size.unwrap_or(defaults.batch_size),
            seed: args.seed,
            size: args.size,
            data_dir: args.data_dir.clone(),
            devices: args.devices,
            nodes: args.nodes,
            task_options,
            data: None,
        }
    }

    /// The settings that differ between `self` and `other`, as `name: saved → requested`.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let flat = |settings: &Self| {
            let mut leaves = BTreeMap::new();
            let json = serde_json::to_value(settings).expect("settings serialise");
            flatten_json("", &json, &mut leaves);
            leaves
        };
        let (flat_ours, flat_theirs) = (flat(self), flat(other));
        let names: std::collections::BTreeSet<&String> =
            flat_ours.keys().chain(flat_theirs.keys()).collect();
        let shown = |value: Option<&String>| value.cloned().unwrap_or_else(|| "-".to_string());
        names
            .into_iter()
            .filter(|name| flat_ours.get(*name) != flat_theirs.get(*name))
            .map(|name| {
                format!(
                    "{name}: {} → {}",
                    shown(flat_ours.get(name)),
                    shown(flat_theirs.get(name))
                )
            })
            .collect()
    }
}

/// `value`'s leaves by dotted path (`optimizer.beta_2`, `task_options.depth`).
fn flatten_json(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten_json(&path, field, out);
            }
        }
        serde_json::Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}
