//! [`Adam2k`] for Burn 0.22: the paper's control experiment for the variance hypothesis (Liu et
//! al. 2020, §3.2), as a per-tensor `Optimizer`.
//!
//! For the first `k` steps only the second moment `v_t` is updated; θ and the first moment `m_t`
//! stay frozen. After that it is Adam, both bias corrections counting the total step `t`, with
//! decoupled weight decay on the updating steps — as the code behind the paper's figure (`Adam2`
//! in `nmt/my_module/adam2.py` of github.com/LiyuanLucasLiu/RAdam) does. The maths is
//! radam-core's ([`Adam2kPlan`], `adam_2k_step!`), shared with radam-burn (Burn 0.19).

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};
use radam_core::{Adam2kHyper, Adam2kPlan, RAdamConfigError};

use crate::config::module_optimizer;
use crate::radam::refuse_moments_of_another_shape;

// `Adam2kConfig` itself — its fields with their documented defaults, `with_*`, `fields` and
// `validate` — is written once, in radam-core's `adam_2k_config!`, and expanded here and in
// radam-burn.
radam_core::adam_2k_config!(radam_burn_022);

impl Adam2kConfig {
    /// Builds the optimizer for a whole module, with the configured gradient clipping: the
    /// [`ModuleOptimizer`] that `Learner::new` takes.
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate); use
    /// [`try_init`](Self::try_init) to get it as a value.
    pub fn init(&self) -> ModuleOptimizer {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init(&self) -> Result<ModuleOptimizer, RAdamConfigError> {
        Ok(module_optimizer(self.build()?, &self.grad_clipping))
    }

    /// Builds the bare [`Adam2k`] (a per-tensor `Optimizer`), e.g. for
    /// `ModuleOptimizer::with_group` or to wrap in [`Lookahead`](crate::Lookahead).
    pub fn build(&self) -> Result<Adam2k, RAdamConfigError> {
        self.validate()?;
        Ok(Adam2k {
            hyper: self.fields().hyper(),
        })
    }
}

/// Adam that spends its first `k` steps estimating `v_t` with θ and `m_t` frozen (the paper's
/// "Adam-2k" for `k = 2000`). Build it with [`Adam2kConfig::init`].
///
/// Step `t` (counting every step, frozen ones included):
/// - every step: `v_t ← β2·v_{t−1} + (1 − β2)·g_t²`;
/// - `t ≤ k`: θ and `m` unchanged;
/// - `t > k`: `θ ← θ − α·λ·θ`, `m ← β1·m + (1 − β1)·g_t`,
///   `θ ← θ − α·sqrt(1 − β2^t)/(1 − β1^t) · m / (sqrt(v_t) + ε)`.
#[derive(Clone, Debug)]
pub struct Adam2k {
    hyper: Adam2kHyper,
}

/// The per-parameter state of [`Adam2k`]: the step count and both moments. It derives
/// `RecordState`, so the optimizer's record and the learner's checkpoints save and restore it.
#[derive(burn::optim::RecordState, Clone, Debug)]
pub struct Adam2kState<const D: usize> {
    /// Steps taken, frozen ones included: `t`.
    pub time: usize,
    /// The first moment, not bias-corrected; zero until step `k + 1`.
    pub m: Tensor<D>,
    /// The second moment, not bias-corrected.
    pub v: Tensor<D>,
}

impl Optimizer for Adam2k {
    type State<const D: usize> = Adam2kState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        g_t: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        refuse_moments_of_another_shape(&theta, state.as_ref().map(|s| (&s.m, &s.v)));
        let time = state.as_ref().map_or(0, |state| state.time) + 1;
        let plan = Adam2kPlan::new(&self.hyper, time, lr);
        let moments = state.map(|state| (state.m, state.v));
        let (theta, m, v) = radam_core::adam_2k_step!(&plan, theta, g_t, moments);
        (theta, Some(Adam2kState { time, m, v }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam2kState {
            time: state.time,
            m: state.m.to_device(device),
            v: state.v.to_device(device),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::grad_clipping::GradientClippingConfig;
    use burn::tensor::TensorData;
    use radam_core::reference_data::adam_2k::cases;
    use radam_core::reference_data::two_parameters::{B_SHAPE, Pair, W_SHAPE};

    use super::*;
    use crate::test_devices::cpu_devices;
    use crate::two_parameter_model::TwoParameters;

    /// Through the `ModuleOptimizer` that `init` returns, on both CPU backends: θ within the
    /// tolerance of the reference after every step, and exactly unchanged during the frozen
    /// steps.
    #[test]
    fn trajectories_match_the_reference() {
        for device in cpu_devices() {
            let device = device.autodiff();
            for case in cases() {
                let mut optimizer = Adam2kConfig::from_fields(&case.fields()).init();
                let mut model = Some(TwoParameters::new(&case.trajectory.initial, &device));
                let worst = case.replay(|lr, grads| {
                    let current = model.take().unwrap();
                    let grads = current.gradients(grads);
                    let next = model.insert(optimizer.step(lr, current, grads));
                    next.values()
                });
                println!(
                    "{device:?}, {}: worst scaled error {worst:e}",
                    case.trajectory.name
                );
            }
        }
    }

    /// Through the per-tensor `Optimizer`, one tensor per parameter: θ after every step (and
    /// unchanged during the frozen ones), and `t`, `m_t` and `v_t` after the last step.
    #[test]
    fn moments_match_the_reference() {
        /// θ of rank `D` and its state, stepped in place by `step`.
        type Parameter<const D: usize> = (Tensor<D>, Option<Adam2kState<D>>);
        fn start<const D: usize>(values: &[f32], shape: [usize; D]) -> Parameter<D> {
            let data = TensorData::new(values.to_vec(), shape);
            (Tensor::from_data(data, &Device::flex()), None)
        }
        fn step<const D: usize>(
            adam_2k: &Adam2k,
            lr: f64,
            (theta, state): &mut Parameter<D>,
            grad: &[f32],
        ) -> Vec<f32> {
            let grad = Tensor::from_data(
                TensorData::new(grad.to_vec(), theta.dims()),
                &theta.device(),
            );
            let (next, next_state) = adam_2k.step(lr, theta.clone(), grad, state.take());
            (*theta, *state) = (next, next_state);
            flat(theta.clone())
        }
        fn flat<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
            tensor.into_data().try_to_vec::<f32>().unwrap()
        }
        for case in cases() {
            let adam_2k = Adam2kConfig::from_fields(&case.fields()).build().unwrap();
            let initial = &case.trajectory.initial;
            let (mut w, mut b) = (start(&initial.w, W_SHAPE), start(&initial.b, B_SHAPE));
            case.replay(|lr, grads| Pair {
                w: step(&adam_2k, lr, &mut w, grads.w),
                b: step(&adam_2k, lr, &mut b, grads.b),
            });
            let (w, b) = (w.1.unwrap(), b.1.unwrap());
            case.assert_final_state(
                Pair {
                    w: w.time,
                    b: b.time,
                },
                Pair {
                    w: flat(w.m),
                    b: flat(b.m),
                },
                Pair {
                    w: flat(w.v),
                    b: flat(b.v),
                },
            );
        }
    }

    #[test]
    fn bad_configs_are_one_clear_error() {
        let error = |config: Adam2kConfig| config.try_init().err().unwrap().to_string();
        assert_eq!(
            error(Adam2kConfig::new().with_beta_1(-0.1)),
            "invalid Adam2kConfig: beta_1 = -0.1 must lie in [0, 1)"
        );
        assert_eq!(
            error(
                Adam2kConfig::new()
                    .with_grad_clipping(Some(GradientClippingConfig::Value(f32::INFINITY)))
            ),
            "invalid Adam2kConfig: grad_clipping (Value) = inf must be finite and > 0"
        );
    }

    #[test]
    fn a_state_of_another_shape_is_refused() {
        let device = Device::flex();
        let adam_2k = Adam2kConfig::new().build().unwrap();
        let theta = Tensor::<2>::ones([3, 4], &device);
        let wrong = Adam2kState {
            time: 3,
            m: Tensor::zeros([4, 3], &device),
            v: Tensor::zeros([4, 3], &device),
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            adam_2k.step(1e-3, theta.clone(), theta, Some(wrong))
        }));
        let message = outcome.expect_err("refused");
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("does not fit the parameter"), "{message}");
    }
}
