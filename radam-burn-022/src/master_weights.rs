//! [`MasterWeights`]: f32 master weights and f32 optimizer state for bf16/f16 parameters, around
//! any Burn 0.22 per-tensor optimizer.
//!
//! Burn keeps an optimizer's state in the parameter's dtype and has no master copy (Burn issue
//! #5696). With bf16 parameters an update smaller than half a unit in the last place of θ —
//! 2⁻⁹ to 2⁻⁸ of |θ| — is rounded away, so a small learning rate can leave θ where it was; m_t
//! and v_t lose as many bits. `MasterWeights` gives the wrapped optimizer an f32 copy of each
//! low-precision parameter and the gradient widened to f32, so the optimizer's state is f32 too,
//! and writes back θ rounded to the parameter's dtype: the low-precision model follows the f32
//! trajectory, rounded. Parameters in f32 or f64 pass through untouched.
//!
//! Memory, per low-precision parameter of n elements (RAdam): the f32 master copy (4n bytes) and
//! f32 moments (8n bytes) — 12n bytes of state, against 4n for bf16 moments without it; with the
//! bf16 parameter itself 14n bytes, where f32 training takes 12n. The savings of bf16 training
//! are then in activations and bandwidth, not in the optimizer.

use burn::optim::{LearningRate, Optimizer, RecordState};
use burn::tensor::{DType, Device, FloatDType, Tensor};

/// Keeps an f32 master copy of every bf16 or f16 parameter and runs the wrapped optimizer `O` on
/// it (in f32, so `O`'s state is f32), writing back θ rounded to the parameter's dtype. Build it
/// with [`MasterWeights::new`], or [`RAdamConfig::init_with_master_weights`](crate::RAdamConfig)
/// for RAdam.
///
/// The master copy, not the parameter, is the truth the optimizer steps: a parameter changed
/// outside the optimizer after its first step is overwritten on the next one.
#[derive(Clone, Debug)]
pub struct MasterWeights<O> {
    inner: O,
}

impl<O: Optimizer> MasterWeights<O> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use burn::optim::ModuleOptimizer;
    /// use radam_burn_022::{MasterWeights, RAdamConfig};
    ///
    /// let radam = RAdamConfig::new().build().unwrap();
    /// let optimizer = ModuleOptimizer::from(MasterWeights::new(radam));
    /// # drop(optimizer);
    /// ```
    pub fn new(inner: O) -> Self {
        Self { inner }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

/// The per-parameter state of [`MasterWeights`]: the wrapped optimizer's state (f32 for a
/// low-precision parameter) and the f32 master copy of θ (`None` for an f32 or f64 parameter).
#[derive(RecordState, Clone, Debug)]
pub struct MasterWeightsState<S: RecordState, const D: usize> {
    /// The wrapped optimizer's state.
    pub inner: Option<S>,
    /// θ in f32, for a bf16 or f16 parameter.
    pub master: Option<Tensor<D>>,
}

/// Whether a parameter of `dtype` gets a master copy.
fn is_low_precision(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

impl<O: Optimizer> Optimizer for MasterWeights<O> {
    type State<const D: usize> = MasterWeightsState<O::State<D>, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (inner, master) = match state {
            Some(state) => (state.inner, state.master),
            None => (None, None),
        };
        let dtype = theta.dtype();
        if !is_low_precision(dtype) {
            let (theta, inner) = self.inner.step(lr, theta, grad, inner);
            return (
                theta,
                Some(MasterWeightsState {
                    inner,
                    master: None,
                }),
            );
        }
        // θ in f32: the saved master copy, or the parameter widened on its first step.
        let master = master.unwrap_or_else(|| theta.clone().cast(FloatDType::F32));
        if master.dims() != theta.dims() {
            panic!(
                "the saved f32 master weights do not fit the parameter: θ has shape {:?}, the \
                 master copy {:?} (is the optimizer record from another model?)",
                theta.dims(),
                master.dims()
            );
        }
        let (master, inner) = self
            .inner
            .step(lr, master, grad.cast(FloatDType::F32), inner);
        // θ ← the f32 step rounded to the parameter's dtype.
        let theta = master.clone().cast(dtype);
        (
            theta,
            Some(MasterWeightsState {
                inner,
                master: Some(master),
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        MasterWeightsState {
            inner: state.inner.map(|inner| O::to_device(inner, device)),
            master: state.master.map(|master| master.to_device(device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use burn::tensor::TensorData;

    use super::*;
    use crate::{RAdam, RAdamConfig};

    const SHAPE: [usize; 2] = [3, 4];

    /// Values exactly representable in bf16 (multiples of 1/8 and 1/4 in [−1.5, 1.5]), so that
    /// the bf16 and the f32 runs start from the same θ and see the same gradients.
    fn theta_0() -> Vec<f32> {
        (0..12).map(|i| (i as f32 - 5.5) / 8.0).collect()
    }

    fn gradient(t: usize) -> Vec<f32> {
        (0..12)
            .map(|i| ((i * 7 + t * 3) % 11) as f32 / 4.0 - 1.25)
            .collect()
    }

    fn tensor(values: &[f32], dtype: FloatDType, device: &Device) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(values.to_vec(), SHAPE), device).cast(dtype)
    }

    /// The values of any float tensor, widened to f32 exactly.
    fn values(tensor: &Tensor<2>) -> Vec<u32> {
        let widened = tensor.clone().cast(FloatDType::F32);
        let values = widened.into_data().try_to_vec::<f32>().unwrap();
        values.into_iter().map(f32::to_bits).collect()
    }

    fn radam(lr_weight_decay: f32) -> RAdam {
        RAdamConfig::new()
            .with_weight_decay(lr_weight_decay)
            .build()
            .unwrap()
    }

    /// 200 steps of a bf16 parameter with master weights against the same steps in f32: after
    /// every step the master copy equals the f32 θ bit for bit, and the bf16 θ is that θ rounded.
    #[test]
    fn a_bf16_parameter_follows_the_f32_trajectory_rounded() {
        let device = Device::flex();
        let radam = radam(0.01);
        let master_weights = MasterWeights::new(radam.clone());
        let mut f32_theta = tensor(&theta_0(), FloatDType::F32, &device);
        let mut bf16_theta = tensor(&theta_0(), FloatDType::BF16, &device);
        let (mut f32_state, mut bf16_state) = (None, None);
        for t in 0..200 {
            let lr = 1e-2;
            let grad = gradient(t);
            (f32_theta, f32_state) = radam.step(
                lr,
                f32_theta,
                tensor(&grad, FloatDType::F32, &device),
                f32_state,
            );
            (bf16_theta, bf16_state) = master_weights.step(
                lr,
                bf16_theta,
                tensor(&grad, FloatDType::BF16, &device),
                bf16_state,
            );
            assert_eq!(bf16_theta.dtype(), DType::BF16, "step {}", t + 1);
            let state = bf16_state.as_ref().unwrap();
            let master = state.master.as_ref().expect("a master copy for bf16");
            assert_eq!(master.dtype(), DType::F32);
            assert_eq!(values(master), values(&f32_theta), "step {}: master", t + 1);
            let rounded = f32_theta.clone().cast(FloatDType::BF16);
            assert_eq!(values(&bf16_theta), values(&rounded), "step {}: θ", t + 1);
            let moments = state.inner.as_ref().unwrap();
            assert_eq!(moments.m.dtype(), DType::F32, "the moments are f32");
        }
        assert_ne!(
            values(&bf16_theta),
            values(&tensor(&theta_0(), FloatDType::BF16, &device)),
            "θ moved"
        );
    }

    /// At lr 1e-3 every step of θ = 1 is below half a bf16 unit in the last place (2⁻⁹): plain
    /// RAdam on a bf16 parameter never moves it, RAdam with master weights moves it as f32 does.
    #[test]
    fn plain_bf16_state_loses_the_updates_that_master_weights_keep() {
        let device = Device::flex();
        let radam = radam(0.0);
        let master_weights = MasterWeights::new(radam.clone());
        let ones = vec![1.0; 12];
        let (mut plain, mut plain_state) = (tensor(&ones, FloatDType::BF16, &device), None);
        let (mut kept, mut kept_state) = (plain.clone(), None);
        let (mut exact, mut exact_state) = (tensor(&ones, FloatDType::F32, &device), None);
        let grad = |dtype| tensor(&[1.0; 12], dtype, &device);
        for _ in 0..200 {
            (plain, plain_state) = radam.step(1e-3, plain, grad(FloatDType::BF16), plain_state);
            (kept, kept_state) =
                master_weights.step(1e-3, kept, grad(FloatDType::BF16), kept_state);
            (exact, exact_state) = radam.step(1e-3, exact, grad(FloatDType::F32), exact_state);
        }
        assert_eq!(
            values(&plain),
            vec![1.0f32.to_bits(); 12],
            "plain bf16 lost every update"
        );
        assert_eq!(values(&kept), values(&exact.clone().cast(FloatDType::BF16)));
        let moved = f32::from_bits(values(&kept)[0]);
        assert!(moved < 1.0, "with master weights θ moved, to {moved}");
        println!(
            "after 200 steps: plain bf16 θ = 1, with master weights {moved}, f32 {}",
            f32::from_bits(values(&exact)[0])
        );
    }

    #[test]
    fn f32_parameters_pass_through_unchanged() {
        let device = Device::flex();
        let radam = radam(0.01);
        let master_weights = MasterWeights::new(radam.clone());
        let (mut plain, mut plain_state) = (tensor(&theta_0(), FloatDType::F32, &device), None);
        let (mut wrapped, mut wrapped_state) = (plain.clone(), None);
        for t in 0..20 {
            let grad = tensor(&gradient(t), FloatDType::F32, &device);
            (plain, plain_state) = radam.step(1e-2, plain, grad.clone(), plain_state);
            (wrapped, wrapped_state) = master_weights.step(1e-2, wrapped, grad, wrapped_state);
        }
        assert_eq!(values(&wrapped), values(&plain));
        assert!(
            wrapped_state.unwrap().master.is_none(),
            "no copy of an f32 θ"
        );
    }

    /// A module whose only parameter is a bf16 `w`; `loss = sum(w ⊙ G)` makes its gradient `G`.
    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<2>>,
    }

    impl Weights {
        fn gradients(&self, t: usize) -> GradientsParams {
            let w = self.w.val();
            let g = tensor(&gradient(t), FloatDType::BF16, &w.device());
            GradientsParams::from_grads(w.mul(g).sum().backward(), self)
        }
    }

    /// Through the `ModuleOptimizer` of `init_with_master_weights` on a bf16 module: the record
    /// holds the master copy and the f32 moments, and a run resumed from it mid-way ends
    /// bit-identical to the uninterrupted one.
    #[test]
    fn a_bf16_module_resumes_bit_identically() {
        let device = Device::flex().autodiff();
        let start = || Weights {
            w: Param::from_tensor(tensor(&theta_0(), FloatDType::BF16, &device)),
        };
        let config = RAdamConfig::new().with_weight_decay(0.01);
        let train = |mut model: Weights, optimizer: &mut ModuleOptimizer, steps| {
            for t in steps {
                let grads = model.gradients(t);
                model = optimizer.step(1e-2, model, grads);
            }
            model
        };
        let straight = train(start(), &mut config.init_with_master_weights(), 0..30);
        let mut first = config.init_with_master_weights();
        let halfway = train(start(), &mut first, 0..17);
        let bytes = first.into_bytes().expect("the record serialises");
        let mut resumed = config
            .init_with_master_weights()
            .from_bytes(bytes)
            .expect("the record loads");
        let resumed = train(halfway, &mut resumed, 17..30);
        assert_eq!(resumed.w.val().dtype(), DType::BF16);
        assert_eq!(values(&resumed.w.val()), values(&straight.w.val()));
        assert_ne!(
            values(&straight.w.val()),
            values(&start().w.val()),
            "θ moved"
        );
    }
}
