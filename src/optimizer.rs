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
use radam_burn::{RAdam, RAdamConfig, RAdamConfigError};

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
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Radam => "RAdam",
            Self::Adam => "Adam",
            Self::Adamw => "AdamW",
            Self::Sgd => "SGD",
        })
    }
}

/// The hyper-parameters a run sets on its optimizer; the rest keep PyTorch's defaults
/// (β = (0.9, 0.999), ε = 1e-8 — Burn's Adam defaults to ε = 1e-5, PyTorch to 1e-8).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerSettings {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// β2 of the adaptive optimizers.
    pub beta_2: f32,
    /// Weight decay: L2 for RAdam, Adam and SGD, decoupled for AdamW.
    pub weight_decay: f32,
}

impl OptimizerSettings {
    /// `kind` with β2 = 0.999 and the given weight decay.
    pub fn new(kind: OptimizerKind, weight_decay: f32) -> Self {
        Self {
            kind,
            beta_2: 0.999,
            weight_decay,
        }
    }

    /// The RAdam configuration these settings describe (also for the rectification metric).
    pub fn radam_config(&self) -> RAdamConfig {
        RAdamConfig::new()
            .with_beta_2(self.beta_2)
            .with_weight_decay(self.weight_decay)
    }

    /// Builds the optimizer for a model `M` on backend `B`, rejecting invalid hyper-parameters.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<AnyOptimizer<M, B>, RAdamConfigError> {
        let l2 = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay));
        // Every baseline shares RAdam's validation of β2 and the weight decay.
        self.radam_config().validate()?;
        Ok(match self.kind {
            OptimizerKind::Radam => AnyOptimizer::RAdam(self.radam_config().try_init()?),
            OptimizerKind::Adam => AnyOptimizer::Adam(
                AdamConfig::new()
                    .with_beta_2(self.beta_2)
                    .with_epsilon(1e-8)
                    .with_weight_decay(l2)
                    .init(),
            ),
            OptimizerKind::Adamw => AnyOptimizer::AdamW(
                AdamWConfig::new()
                    .with_beta_2(self.beta_2)
                    .with_epsilon(1e-8)
                    .with_weight_decay(self.weight_decay)
                    .init(),
            ),
            OptimizerKind::Sgd => AnyOptimizer::Sgd(
                SgdConfig::new()
                    .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                    .with_weight_decay(l2)
                    .init(),
            ),
        })
    }
}

/// One of the optimizers of [`OptimizerKind`], usable wherever Burn expects an [`Optimizer`]
/// (for example `LearnerBuilder::build`).
#[derive(Clone)]
pub enum AnyOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    /// RAdam.
    RAdam(OptimizerAdaptor<RAdam, M, B>),
    /// Burn's Adam.
    Adam(OptimizerAdaptor<Adam, M, B>),
    /// Burn's AdamW.
    AdamW(OptimizerAdaptor<AdamW, M, B>),
    /// Burn's SGD.
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
}

type StateOf<O, M, B> = Option<<OptimizerAdaptor<O, M, B> as Optimizer<M, B>>::Record>;

/// The saved state of an [`AnyOptimizer`]: the state of whichever optimizer ran, in its slot.
pub type AnyOptimizerRecord<M, B> = (
    StateOf<RAdam, M, B>,
    StateOf<Adam, M, B>,
    StateOf<AdamW, M, B>,
    StateOf<Sgd<<B as AutodiffBackend>::InnerBackend>, M, B>,
);

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for AnyOptimizer<M, B> {
    type Record = AnyOptimizerRecord<M, B>;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Self::RAdam(optimizer) => optimizer.step(lr, module, grads),
            Self::Adam(optimizer) => optimizer.step(lr, module, grads),
            Self::AdamW(optimizer) => optimizer.step(lr, module, grads),
            Self::Sgd(optimizer) => optimizer.step(lr, module, grads),
        }
    }

    fn to_record(&self) -> Self::Record {
        match self {
            Self::RAdam(optimizer) => (Some(optimizer.to_record()), None, None, None),
            Self::Adam(optimizer) => (None, Some(optimizer.to_record()), None, None),
            Self::AdamW(optimizer) => (None, None, Some(optimizer.to_record()), None),
            Self::Sgd(optimizer) => (None, None, None, Some(optimizer.to_record())),
        }
    }

    /// # Panics
    /// If the record was saved by a different optimizer (the harness checks this before it
    /// resumes, with a clear message).
    fn load_record(self, record: Self::Record) -> Self {
        const MISMATCH: &str = "the checkpoint's optimizer state belongs to a different optimizer";
        match self {
            Self::RAdam(optimizer) => Self::RAdam(optimizer.load_record(record.0.expect(MISMATCH))),
            Self::Adam(optimizer) => Self::Adam(optimizer.load_record(record.1.expect(MISMATCH))),
            Self::AdamW(optimizer) => Self::AdamW(optimizer.load_record(record.2.expect(MISMATCH))),
            Self::Sgd(optimizer) => Self::Sgd(optimizer.load_record(record.3.expect(MISMATCH))),
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
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(2, 1).with_bias(false).init(&device);
        let model = model.load_record(burn::nn::LinearRecord {
            weight: burn::module::Param::from_tensor(Tensor::from_floats([[1.0], [-2.0]], &device)),
            bias: None,
        });
        let mut optimizer = OptimizerSettings::new(kind, 0.0)
            .init::<B, Linear<B>>()
            .unwrap();
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
        // AdamW's default decay is 0 here: same as Adam.
        let adamw = one_step(OptimizerKind::Adamw);
        assert!((adamw[0] - 0.9).abs() < 1e-6, "{adamw:?}");
    }

    #[test]
    fn records_keep_the_optimizer_they_came_from() {
        let optimizer = OptimizerSettings::new(OptimizerKind::Adam, 0.0)
            .init::<B, Linear<B>>()
            .unwrap();
        let record = optimizer.to_record();
        assert!(record.0.is_none() && record.1.is_some());
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let mut settings = OptimizerSettings::new(OptimizerKind::Sgd, 0.0);
        settings.weight_decay = -1.0;
        let error = settings.init::<B, Linear<B>>().err().unwrap().to_string();
        assert!(error.contains("weight_decay"), "{error}");
    }
}
