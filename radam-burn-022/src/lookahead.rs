//! [`Lookahead`] (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
//! back", NeurIPS 2019) over any Burn 0.22 optimizer, and [`Ranger`]: RAdam + Lookahead.
//!
//! Lookahead keeps a second, slow copy `φ` of each trainable parameter. The wrapped ("fast")
//! optimizer takes its steps as usual; after every `k` of them the slow weights move a fraction
//! `α` of the way towards the fast ones, and the fast weights restart from there:
//! `φ ← φ + α·(θ − φ)`, `θ ← φ` (the paper's Algorithm 1). `φ` starts at the parameter's value
//! before its first step. The synchronisation is radam-core's (`lookahead_sync!`), shared with
//! radam-burn (Burn 0.19).

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState};
use burn::tensor::{Device, Tensor};
use radam_core::{LookaheadFields, RAdamConfigError};

use crate::RAdam;
use crate::config::module_optimizer;

// `LookaheadConfig` and `RangerConfig` themselves — fields, documented defaults, `with_*`,
// `fields` and `validate` — are written once, in radam-core's `lookahead_config!`, and expanded
// here and in radam-burn.
radam_core::lookahead_config!(radam_burn_022);

impl LookaheadConfig {
    /// Wraps `inner` (a per-tensor Burn optimizer: ours, or one of Burn's such as
    /// `AdamConfig::new().build()`) in Lookahead, as the [`ModuleOptimizer`] that `Learner::new`
    /// takes. Gradient clipping is the module optimizer's: add it with
    /// `ModuleOptimizer::with_grad_clipping`.
    ///
    /// ```
    /// use burn::optim::AdamConfig;
    /// use radam_burn_022::LookaheadConfig;
    ///
    /// // Lookahead over Burn's own Adam.
    /// let optimizer = LookaheadConfig::new().init(AdamConfig::new().build());
    /// # drop(optimizer);
    /// ```
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate); use
    /// [`try_init`](Self::try_init) to get it as a value.
    pub fn init<O: Optimizer>(&self, inner: O) -> ModuleOptimizer {
        self.try_init(inner)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init<O: Optimizer>(&self, inner: O) -> Result<ModuleOptimizer, RAdamConfigError> {
        Ok(ModuleOptimizer::from(self.build(inner)?))
    }

    /// Builds the bare [`Lookahead`] over `inner` (a per-tensor `Optimizer` itself), e.g. for
    /// `ModuleOptimizer::with_group`.
    pub fn build<O: Optimizer>(&self, inner: O) -> Result<Lookahead<O>, RAdamConfigError> {
        self.validate()?;
        Ok(Lookahead {
            inner,
            fields: self.fields(),
        })
    }
}

/// Lookahead over the per-tensor optimizer `O`: every `k` steps of `O` on a parameter,
/// `φ ← φ + α·(θ − φ)` and `θ ← φ`. Build it with [`LookaheadConfig::init`].
///
/// Burn 0.22's optimizers step one tensor at a time, so each parameter counts its own steps and
/// synchronises after every `k` of them. When every parameter gets a gradient on every step
/// (the usual case) that is every `k` steps of training, as with radam-burn's Lookahead for Burn
/// 0.19, which counts the optimizer's steps; a parameter that gets no gradient on some steps
/// (an unused branch) synchronises later than the others. Only parameters with gradients have
/// slow weights; running statistics such as batch norm's are left to the model, as PyTorch
/// leaves buffers. Memory: one more copy of the parameters than the wrapped optimizer keeps.
#[derive(Clone, Debug)]
pub struct Lookahead<O> {
    inner: O,
    /// `k` and `α`.
    fields: LookaheadFields,
}

impl<O> Lookahead<O> {
    /// The wrapped (fast) optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

/// The per-parameter state of [`Lookahead`]: the wrapped optimizer's state, the slow weights and
/// the step count (where in its cycle of `k` a resumed run is). It derives `RecordState`, so
/// resuming from the optimizer's record or a learner's checkpoint is exact.
#[derive(RecordState, Clone, Debug)]
pub struct LookaheadState<S: RecordState, const D: usize> {
    /// The wrapped optimizer's state (`None` for an optimizer that keeps none, e.g. SGD without
    /// momentum).
    pub inner: Option<S>,
    /// The slow weights `φ`.
    pub slow: Tensor<D>,
    /// Fast steps taken on this parameter.
    pub steps: usize,
}

impl<O: Optimizer> Optimizer for Lookahead<O> {
    type State<const D: usize> = LookaheadState<O::State<D>, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // φ_0 ← θ_0 on a parameter's first step.
        let (inner, slow, steps) = match state {
            Some(state) => (state.inner, state.slow, state.steps),
            None => (None, theta.clone(), 0),
        };
        if slow.dims() != theta.dims() {
            panic!(
                "Lookahead's saved slow weights do not fit the parameter: θ has shape {:?}, φ {:?} \
                 (is the optimizer record from another model?)",
                theta.dims(),
                slow.dims()
            );
        }
        // θ ← one step of the fast optimizer.
        let (theta, inner) = self.inner.step(lr, theta, grad, inner);
        let steps = steps + 1;
        if !self.fields.synchronises_after(steps) {
            return (theta, Some(LookaheadState { inner, slow, steps }));
        }
        // φ ← φ + α·(θ − φ); θ ← φ   (Algorithm 1, after k inner steps)
        let slow = radam_core::lookahead_sync!(slow, theta, self.fields.alpha);
        (slow.clone(), Some(LookaheadState { inner, slow, steps }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        LookaheadState {
            inner: state.inner.map(|inner| O::to_device(inner, device)),
            slow: state.slow.to_device(device),
            steps: state.steps,
        }
    }
}

/// Ranger: [`RAdam`] with [`Lookahead`] over it (L. Wright's combination of the two, 2019).
pub type Ranger = Lookahead<RAdam>;

impl RangerConfig {
    /// Builds RAdam wrapped in Lookahead, with RAdam's gradient clipping: the [`ModuleOptimizer`]
    /// that `Learner::new` takes.
    ///
    /// ```
    /// use radam_burn_022::{LookaheadConfig, RAdamConfig, RangerConfig};
    ///
    /// let optimizer = RangerConfig::new(RAdamConfig::new(), LookaheadConfig::new()).init();
    /// # drop(optimizer);
    /// ```
    ///
    /// # Panics
    /// If either config is invalid; use [`try_init`](Self::try_init) to get the error as a value.
    pub fn init(&self) -> ModuleOptimizer {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init(&self) -> Result<ModuleOptimizer, RAdamConfigError> {
        Ok(module_optimizer(self.build()?, &self.radam.grad_clipping))
    }

    /// Builds the bare [`Ranger`] (a per-tensor `Optimizer`).
    pub fn build(&self) -> Result<Ranger, RAdamConfigError> {
        self.lookahead.build(self.radam.build()?)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use burn::optim::{AdamConfig, SgdConfig};
    use radam_core::reference_data::lookahead::{Case, TOLERANCE, cases, ranger_case};

    use super::*;
    use crate::RAdamConfig;
    use crate::test_devices::cpu_devices;
    use crate::two_parameter_model::TwoParameters;

    /// Steps `steps` of `case` with `optimizer`, checking every step against the reference
    /// within `tolerance`; the model after them and the worst scaled error.
    fn follow(
        case: &Case,
        steps: Range<usize>,
        model: TwoParameters,
        optimizer: &mut ModuleOptimizer,
        tolerance: f32,
    ) -> (TwoParameters, f32) {
        let mut model = Some(model);
        let worst = case.trajectory.replay(steps, tolerance, |lr, grads| {
            let current = model.take().unwrap();
            let grads = current.gradients(grads);
            let next = optimizer.step(lr, current, grads);
            let values = next.values();
            model = Some(next);
            values
        });
        (model.unwrap(), worst)
    }

    fn config(case: &Case) -> LookaheadConfig {
        LookaheadConfig::new().with_k(case.k).with_alpha(case.alpha)
    }

    fn ranger(case: &Case) -> ModuleOptimizer {
        assert_eq!(case.inner, "radam");
        RangerConfig::new(RAdamConfig::new(), config(case)).init()
    }

    #[test]
    fn trajectories_match_pytorch_over_several_synchronisations() {
        for device in cpu_devices() {
            let device = device.autodiff();
            for case in cases() {
                let steps = case.trajectory.steps;
                assert!(
                    steps >= 30 && steps / case.k >= 6,
                    "{}",
                    case.trajectory.name
                );
                let mut optimizer = match case.inner.as_str() {
                    "radam" => ranger(&case),
                    "adam" => config(&case).init(AdamConfig::new().with_epsilon(1e-8).build()),
                    other => panic!("unknown inner optimizer {other}"),
                };
                let start = TwoParameters::new(&case.trajectory.initial, &device);
                let (_, worst) = follow(&case, 0..steps, start, &mut optimizer, TOLERANCE);
                println!(
                    "{device:?}, {}: worst scaled error {worst:e}",
                    case.trajectory.name
                );
            }
        }
    }

    /// Saving the optimizer three steps into a cycle (its burnpack bytes, as a checkpoint holds
    /// them) and loading it into a fresh one continues the same trajectory to the last bit.
    #[test]
    fn resuming_mid_cycle_is_bit_identical() {
        let case = ranger_case();
        let device = Device::flex().autodiff();
        let steps = case.trajectory.steps;
        // 13 = two synchronisations and three steps into the third cycle (k = 5).
        let interrupted_at = 13;
        assert_ne!(interrupted_at % case.k, 0);
        let start = || TwoParameters::new(&case.trajectory.initial, &device);
        let (straight, _) = follow(&case, 0..steps, start(), &mut ranger(&case), TOLERANCE);

        let mut first = ranger(&case);
        let (model, _) = follow(&case, 0..interrupted_at, start(), &mut first, TOLERANCE);
        let bytes = first.into_bytes().expect("the record serialises");
        drop(first);
        let mut resumed = ranger(&case).from_bytes(bytes).expect("the record loads");
        let (model, _) = follow(&case, interrupted_at..steps, model, &mut resumed, TOLERANCE);
        assert_eq!(
            model.values(),
            straight.values(),
            "bit-identical after resuming"
        );
    }

    /// Over an optimizer that keeps no tensors (SGD without momentum), the record holds the
    /// slow weights and the step count alone, and resuming is still exact.
    #[test]
    fn an_inner_optimizer_without_state_resumes_too() {
        let case = ranger_case();
        let device = Device::flex().autodiff();
        let lookahead = || LookaheadConfig::new().init(SgdConfig::new().build());
        let start = || TwoParameters::new(&case.trajectory.initial, &device);
        // The values are not the reference's (that is RAdam); only their equality counts.
        let loose = f32::INFINITY;
        let (straight, _) = follow(&case, 0..12, start(), &mut lookahead(), loose);
        let mut first = lookahead();
        let (model, _) = follow(&case, 0..7, start(), &mut first, loose);
        let bytes = first.into_bytes().expect("the record serialises");
        let mut resumed = lookahead().from_bytes(bytes).expect("the record loads");
        let (model, _) = follow(&case, 7..12, model, &mut resumed, loose);
        assert_eq!(model.values(), straight.values());
        assert_ne!(
            model.values(),
            case.trajectory.initial,
            "the parameters moved"
        );
    }

    #[test]
    fn unusable_settings_are_named() {
        let error = |config: LookaheadConfig| config.validate().unwrap_err().to_string();
        assert_eq!(
            error(LookaheadConfig::new().with_k(0)),
            "invalid LookaheadConfig: k = 0 must be at least 1"
        );
        assert_eq!(
            error(LookaheadConfig::new().with_alpha(1.5)),
            "invalid LookaheadConfig: alpha = 1.5 must lie in (0, 1]"
        );
        let invalid_radam =
            RangerConfig::new(RAdamConfig::new().with_beta_2(1.0), LookaheadConfig::new());
        assert_eq!(
            invalid_radam.try_init().err().unwrap().to_string(),
            "invalid RAdamConfig: beta_2 = 1.0 must lie in [0, 1)"
        );
        let invalid_k = RangerConfig::new(RAdamConfig::new(), LookaheadConfig::new().with_k(0));
        assert_eq!(invalid_k.try_init().err().unwrap().field, "k");
    }

    #[test]
    fn slow_weights_of_another_shape_are_refused() {
        let device = Device::flex();
        let ranger = RangerConfig::new(RAdamConfig::new(), LookaheadConfig::new())
            .build()
            .unwrap();
        let theta = Tensor::<2>::ones([3, 4], &device);
        let wrong = LookaheadState {
            inner: None,
            slow: Tensor::zeros([4, 3], &device),
            steps: 2,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ranger.step(1e-3, theta.clone(), theta, Some(wrong))
        }));
        let message = outcome.expect_err("refused");
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("do not fit the parameter"), "{message}");
    }
}
