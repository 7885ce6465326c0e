//! The optimizers a training run can pick at run time — RAdam and the paper's baselines — behind
//! one type, so that the training harness is compiled once per backend, not once per optimizer.

use std::fmt;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig,
};
use burn::tensor::backend::AutodiffBackend;
use radam_burn::{Adam2k, Adam2kConfig, RAdam, RAdamConfig, RAdamConfigError};

use crate::harness::gradient_histogram::GradientLog;

/// Which optimizer trains the model.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// RAdam (`torch.optim.RAdam` semantics; needs no warmup).
    Radam,
    /// Adam with L2 weight decay (`torch.optim.Adam`).
    Adam,
    /// Adam with decoupled weight decay (`torch.optim.AdamW`).
    Adamw,
    /// SGD with heavy-ball momentum 0.9 (`torch.optim.SGD(momentum=0.9)`).
    Sgd,
    /// The paper's Adam-2k control: only `v_t` is updated for the first `--frozen-steps` steps
    /// (θ and `m_t` frozen), then Adam.
    #[value(name = "adam-2k")]
    #[serde(rename = "adam-2k")]
    Adam2k,
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Radam => "RAdam",
            Self::Adam => "Adam",
            Self::Adamw => "AdamW",
            Self::Sgd => "SGD",
            Self::Adam2k => "Adam-2k",
        })
    }
}

/// Which RAdam a run trains with: the three references of the maths, as [`RAdamConfig`]'s
/// presets. They differ in when the rectified step starts, what happens before it, and how the
/// weight decay is applied.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RAdamVariant {
    /// `torch.optim.RAdam` ([`RAdamConfig::new`]): rectified once ρ_t > 5, momentum steps
    /// before; L2 decay unless `--decoupled-weight-decay`.
    #[default]
    Torch,
    /// The paper's Algorithm 2 ([`RAdamConfig::paper`]): rectified once ρ_t > 4, momentum
    /// steps before, decoupled decay.
    Paper,
    /// The authors' code behind the paper's figures ([`RAdamConfig::official`]): rectified once
    /// ρ_t ≥ 5, no update before, decoupled decay.
    Official,
}

impl RAdamVariant {
    /// The preset this variant names, before a run's β2, ε and weight decay are set on it.
    pub fn preset(self) -> RAdamConfig {
        match self {
            Self::Torch => RAdamConfig::new(),
            Self::Paper => RAdamConfig::paper(),
            Self::Official => RAdamConfig::official(),
        }
    }
}

impl fmt::Display for RAdamVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Torch => "torch",
            Self::Paper => "paper",
            Self::Official => "official",
        })
    }
}

/// The hyper-parameters a run sets on its optimizer; the rest keep PyTorch's defaults
/// (β1 = 0.9 — and ε = 1e-8 unless set: Burn's Adam defaults to ε = 1e-5, PyTorch to 1e-8).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerSettings {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// β2 of the adaptive optimizers.
    pub beta_2: f32,
    /// Weight decay: L2 for RAdam, Adam and SGD; decoupled for AdamW and Adam-2k (as the
    /// paper's Adam-2k code).
    pub weight_decay: f32,
    /// ε of the adaptive optimizers (the paper's Adam-eps control uses 1e-4).
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Adam-2k's `k`: the first steps that update `v_t` only.
    #[serde(default = "default_frozen_steps")]
    pub frozen_steps: usize,
    /// Which RAdam (RAdam runs only).
    #[serde(default)]
    pub radam: RAdamVariant,
    /// RAdam with decoupled weight decay instead of L2 (the paper's and the official variants
    /// always decouple; RAdam runs only).
    #[serde(default)]
    pub decoupled_weight_decay: bool,
}

/// PyTorch's ε, as [`RAdamConfig`](radam_burn::RAdamConfig) defaults to it.
fn default_epsilon() -> f32 {
    radam_burn::RAdamConfig::new().epsilon
}

/// The paper's k, as [`Adam2kConfig`](radam_burn::Adam2kConfig) defaults to it.
pub(crate) fn default_frozen_steps() -> usize {
    radam_burn::Adam2kConfig::new().frozen_steps
}

impl OptimizerSettings {
    /// `kind` with β2 = 0.999, ε = 1e-8, Adam-2k's k = 2000, torch's RAdam with L2 decay and the
    /// given weight decay.
    pub fn new(kind: OptimizerKind, weight_decay: f32) -> Self {
        Self {
            kind,
            beta_2: 0.999,
            weight_decay,
            epsilon: default_epsilon(),
            frozen_steps: default_frozen_steps(),
            radam: RAdamVariant::Torch,
            decoupled_weight_decay: false,
        }
    }

    /// The RAdam configuration these settings describe (also for the rectification metric).
    pub fn radam_config(&self) -> RAdamConfig {
        let config = self
            .radam
            .preset()
            .with_beta_2(self.beta_2)
            .with_weight_decay(self.weight_decay)
            .with_epsilon(self.epsilon);
        if self.decoupled_weight_decay {
            config.with_decoupled_weight_decay(true)
        } else {
            config
        }
    }

    /// The optimizer as a run's log and tables name it: the kind, and for RAdam the variant and
    /// decoupled decay where they are not torch's defaults (`RAdam (official)`,
    /// `RAdam (torch, decoupled decay)`).
    pub fn label(&self) -> String {
        let decoupled = self.decoupled_weight_decay && self.radam == RAdamVariant::Torch;
        match (self.kind, self.radam) {
            (OptimizerKind::Radam, RAdamVariant::Torch) if !decoupled => self.kind.to_string(),
            (OptimizerKind::Radam, variant) if decoupled => {
                format!("RAdam ({variant}, decoupled decay)")
            }
            (OptimizerKind::Radam, variant) => format!("RAdam ({variant})"),
            (kind, _) => kind.to_string(),
        }
    }

    /// Checks the hyper-parameters (every baseline shares RAdam's checks of β2, ε and the
    /// weight decay).
    ///
    /// # Errors
    /// A message naming the optimizer, the flag and the value:
    /// `invalid Adam settings: --beta-2 1.0 must lie in [0, 1)`; or the RAdam-only flag a
    /// baseline was given.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind != OptimizerKind::Radam {
            if self.radam != RAdamVariant::Torch {
                return Err(format!(
                    "--radam {} applies to RAdam only, not to {}",
                    self.radam, self.kind
                ));
            }
            if self.decoupled_weight_decay {
                let hint = match self.kind {
                    OptimizerKind::Adam => " (Adam with decoupled decay is --optimizer adamw)",
                    OptimizerKind::Adamw | OptimizerKind::Adam2k => " (it always decouples)",
                    _ => "",
                };
                return Err(format!(
                    "--decoupled-weight-decay applies to RAdam only, not to {}{hint}",
                    self.kind
                ));
            }
        }
        self.radam_config()
            .validate()
            .map_err(|error| self.describe(&error))
    }

    /// `error` in the words of the command line.
    fn describe(&self, error: &RAdamConfigError) -> String {
        let flag = match error.field {
            "beta_2" => "--beta-2",
            "epsilon" => "--epsilon",
            "weight_decay" => "--weight-decay",
            other => other,
        };
        format!(
            "invalid {} settings: {flag} {} {}",
            self.kind, error.value, error.rule
        )
    }

    /// Builds the optimizer for a model `M` on backend `B`, rejecting invalid hyper-parameters.
    ///
    /// # Errors
    /// The message of [`validate`](Self::validate).
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<AnyOptimizer<M, B>, String> {
        let l2 = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay));
        self.validate()?;
        let choice = match self.kind {
            OptimizerKind::Radam => Choice::RAdam(
                self.radam_config()
                    .try_init()
                    .map_err(|error| self.describe(&error))?,
            ),
            OptimizerKind::Adam => Choice::Adam(
                AdamConfig::new()
                    .with_beta_2(self.beta_2)
                    .with_epsilon(self.epsilon)
                    .with_weight_decay(l2)
                    .init(),
            ),
            OptimizerKind::Adamw => Choice::AdamW(
                AdamWConfig::new()
                    .with_beta_2(self.beta_2)
                    .with_epsilon(self.epsilon)
                    .with_weight_decay(self.weight_decay)
                    .init(),
            ),
            OptimizerKind::Sgd => Choice::Sgd(
                SgdConfig::new()
                    .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                    .with_weight_decay(l2)
                    .init(),
            ),
            OptimizerKind::Adam2k => Choice::Adam2k(
                Adam2kConfig::new()
                    .with_beta_2(self.beta_2)
                    .with_epsilon(self.epsilon)
                    .with_weight_decay(self.weight_decay)
                    .with_frozen_steps(self.frozen_steps)
                    .try_init()
                    .map_err(|error| self.describe(&error))?,
            ),
        };
        Ok(AnyOptimizer {
            choice,
            gradient_log: None,
        })
    }
}

/// One of the optimizers of [`OptimizerKind`], usable wherever Burn expects an [`Optimizer`]
/// (for example `LearnerBuilder::build`), optionally recording gradient histograms.
#[derive(Clone)]
pub struct AnyOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    choice: Choice<M, B>,
    gradient_log: Option<GradientLog>,
}

#[derive(Clone)]
enum Choice<M: AutodiffModule<B>, B: AutodiffBackend> {
    RAdam(OptimizerAdaptor<RAdam, M, B>),
    Adam(OptimizerAdaptor<Adam, M, B>),
    AdamW(OptimizerAdaptor<AdamW, M, B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
    Adam2k(OptimizerAdaptor<Adam2k, M, B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> AnyOptimizer<M, B> {
    /// The same optimizer, recording a histogram of the gradients of its first updates in `log`.
    pub fn with_gradient_log(mut self, log: GradientLog) -> Self {
        self.gradient_log = Some(log);
        self
    }
}

type StateOf<O, M, B> = Option<<OptimizerAdaptor<O, M, B> as Optimizer<M, B>>::Record>;

/// The saved state of an [`AnyOptimizer`]: the state of whichever optimizer ran, in its slot.
pub type AnyOptimizerRecord<M, B> = (
    StateOf<RAdam, M, B>,
    StateOf<Adam, M, B>,
    StateOf<AdamW, M, B>,
    StateOf<Sgd<<B as AutodiffBackend>::InnerBackend>, M, B>,
    StateOf<Adam2k, M, B>,
);

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for AnyOptimizer<M, B> {
    type Record = AnyOptimizerRecord<M, B>;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        if let Some(log) = &self.gradient_log {
            log.observe(&module, &grads);
        }
        match &mut self.choice {
            Choice::RAdam(optimizer) => optimizer.step(lr, module, grads),
            Choice::Adam(optimizer) => optimizer.step(lr, module, grads),
            Choice::AdamW(optimizer) => optimizer.step(lr, module, grads),
            Choice::Sgd(optimizer) => optimizer.step(lr, module, grads),
            Choice::Adam2k(optimizer) => optimizer.step(lr, module, grads),
        }
    }

    fn to_record(&self) -> Self::Record {
        match &self.choice {
            Choice::RAdam(optimizer) => (Some(optimizer.to_record()), None, None, None, None),
            Choice::Adam(optimizer) => (None, Some(optimizer.to_record()), None, None, None),
            Choice::AdamW(optimizer) => (None, None, Some(optimizer.to_record()), None, None),
            Choice::Sgd(optimizer) => (None, None, None, Some(optimizer.to_record()), None),
            Choice::Adam2k(optimizer) => (None, None, None, None, Some(optimizer.to_record())),
        }
    }

    /// # Panics
    /// If the record was saved by a different optimizer (the harness checks this before it
    /// resumes, with a clear message).
    fn load_record(self, record: Self::Record) -> Self {
        const MISMATCH: &str = "the checkpoint's optimizer state belongs to a different optimizer";
        let choice = match self.choice {
            Choice::RAdam(o) => Choice::RAdam(o.load_record(record.0.expect(MISMATCH))),
            Choice::Adam(o) => Choice::Adam(o.load_record(record.1.expect(MISMATCH))),
            Choice::AdamW(o) => Choice::AdamW(o.load_record(record.2.expect(MISMATCH))),
            Choice::Sgd(o) => Choice::Sgd(o.load_record(record.3.expect(MISMATCH))),
            Choice::Adam2k(o) => Choice::Adam2k(o.load_record(record.4.expect(MISMATCH))),
        };
        Self {
            choice,
            gradient_log: self.gradient_log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NdArrayBackend;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Tensor;

    type B = NdArrayBackend;

    fn one_step(kind: OptimizerKind) -> Vec<f32> {
        one_step_with(OptimizerSettings::new(kind, 0.0))
    }

    /// θ = (1, −2) after one step of lr 0.1 on the gradient (1, 1).
    fn one_step_with(settings: OptimizerSettings) -> Vec<f32> {
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(2, 1).with_bias(false).init(&device);
        let model = model.load_record(burn::nn::LinearRecord {
            weight: burn::module::Param::from_tensor(Tensor::from_floats([[1.0], [-2.0]], &device)),
            bias: None,
        });
        let mut optimizer = settings.init::<B, Linear<B>>().unwrap();
        let x = Tensor::<B, 2>::from_floats([[1.0, 1.0]], &device);
        let grads = model.forward(x).sum().backward();
        let grads = GradientsParams::from_grads(grads, &model);
        let model = optimizer.step(0.1, model, grads);
        model.weight.val().into_data().to_vec().unwrap()
    }

    #[test]
    fn first_steps_match_each_optimizers_definition() {
        // The gradient of sum(x·w) is x = (1, 1) for both weights.
        // RAdam's first step is a momentum step: θ − lr·m̂_1 = θ − 0.1.
        assert_eq!(one_step(OptimizerKind::Radam), vec![0.9, -2.1]);
        // Adam's first step is lr·sign(g) (up to ε): θ − 0.1.
        let adam = one_step(OptimizerKind::Adam);
        assert!(
            (adam[0] - 0.9).abs() < 1e-6 && (adam[1] + 2.1).abs() < 1e-6,
            "{adam:?}"
        );
        // SGD: θ − lr·g.
        assert_eq!(one_step(OptimizerKind::Sgd), vec![0.9, -2.1]);
        // Adam-2k's first 2000 steps only update v_t.
        assert_eq!(one_step(OptimizerKind::Adam2k), vec![1.0, -2.0]);
        // AdamW's default decay is 0 here: same as Adam.
        let adamw = one_step(OptimizerKind::Adamw);
        assert!((adamw[0] - 0.9).abs() < 1e-6, "{adamw:?}");
    }

    #[test]
    fn the_radam_variant_decides_the_first_step_and_the_decay() {
        let radam = |variant, decoupled, weight_decay| OptimizerSettings {
            radam: variant,
            decoupled_weight_decay: decoupled,
            ..OptimizerSettings::new(OptimizerKind::Radam, weight_decay)
        };
        // Torch and paper take a momentum step before ρ_t passes the threshold; the official
        // code leaves θ where it is.
        assert_eq!(
            one_step_with(radam(RAdamVariant::Paper, false, 0.0)),
            [0.9, -2.1]
        );
        assert_eq!(
            one_step_with(radam(RAdamVariant::Official, false, 0.0)),
            [1.0, -2.0]
        );
        // L2 decay adds λ·θ to the gradient, g = (1.5, 0), and torch's momentum step is
        // θ − lr·g = (0.85, −2). (Decoupled decay gives the same first step, so the
        // configuration is checked below.)
        let l2 = one_step_with(radam(RAdamVariant::Torch, false, 0.5));
        assert!((l2[0] - 0.85).abs() < 1e-6 && l2[1] == -2.0, "{l2:?}");
        assert!(
            !radam(RAdamVariant::Torch, false, 0.5)
                .radam_config()
                .decoupled_weight_decay
        );
        assert!(
            radam(RAdamVariant::Torch, true, 0.5)
                .radam_config()
                .decoupled_weight_decay
        );
        let official = radam(RAdamVariant::Official, false, 0.5).radam_config();
        assert!(official.decoupled_weight_decay && !official.degenerated_to_sgd);
        assert_eq!((official.weight_decay, official.beta_2), (0.5, 0.999));
        assert_eq!(
            radam(RAdamVariant::Paper, false, 0.0)
                .radam_config()
                .threshold,
            4.0
        );
        // Labels: torch's default unnamed, anything else said.
        assert_eq!(radam(RAdamVariant::Torch, false, 0.0).label(), "RAdam");
        assert_eq!(
            radam(RAdamVariant::Official, true, 0.0).label(),
            "RAdam (official)"
        );
        assert_eq!(
            radam(RAdamVariant::Torch, true, 0.0).label(),
            "RAdam (torch, decoupled decay)"
        );
    }

    #[test]
    fn radam_only_flags_are_refused_for_the_baselines() {
        let settings = OptimizerSettings {
            radam: RAdamVariant::Official,
            ..OptimizerSettings::new(OptimizerKind::Adam, 0.0)
        };
        assert_eq!(
            settings.validate().unwrap_err(),
            "--radam official applies to RAdam only, not to Adam"
        );
        let settings = OptimizerSettings {
            decoupled_weight_decay: true,
            ..OptimizerSettings::new(OptimizerKind::Adam, 0.0)
        };
        assert_eq!(
            settings.validate().unwrap_err(),
            "--decoupled-weight-decay applies to RAdam only, not to Adam \
             (Adam with decoupled decay is --optimizer adamw)"
        );
    }

    #[test]
    fn records_keep_the_optimizer_they_came_from() {
        let optimizer = OptimizerSettings::new(OptimizerKind::Adam, 0.0)
            .init::<B, Linear<B>>()
            .unwrap();
        let record = optimizer.to_record();
        assert!(record.0.is_none() && record.1.is_some() && record.4.is_none());
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let mut settings = OptimizerSettings::new(OptimizerKind::Sgd, 0.0);
        settings.weight_decay = -1.0;
        let error = settings.init::<B, Linear<B>>().err().unwrap();
        assert_eq!(
            error,
            "invalid SGD settings: --weight-decay -1.0 must be finite and ≥ 0"
        );
        let mut settings = OptimizerSettings::new(OptimizerKind::Adam, 0.0);
        settings.beta_2 = 1.0;
        assert_eq!(
            settings.validate().unwrap_err(),
            "invalid Adam settings: --beta-2 1.0 must lie in [0, 1)"
        );
    }
}
