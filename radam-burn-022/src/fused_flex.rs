//! The fused RAdam step on burn-flex, Burn 0.22's CPU backend: radam-core's single pass over θ,
//! g, m and v (`fused_step::update`), in place on flex's buffers, with no per-step allocation —
//! where the tensor-op step makes about five passes over memory. It is chosen at run time from
//! the tensors' backend; every other backend (and any dtype but `f32`) gets the tensor-op step,
//! which stays the reference this one is tested against, bit for bit.

use burn::tensor::{DType, Device, Tensor};
use burn_flex::{Flex, FlexTensor};
use radam_core::StepPlan;
use radam_core::fused_step::{Scalars, update};

use crate::RAdamState;

/// The tensors of one step, handed back unchanged when the fused step does not apply.
pub(crate) type StepInputs<const D: usize> = (Tensor<D>, Tensor<D>, Option<RAdamState<D>>);

/// Runs the fused step if θ lives on flex and every tensor is `f32`; otherwise returns the inputs
/// untouched.
#[allow(clippy::result_large_err)]
pub(crate) fn try_fused_step<const D: usize>(
    plan: &StepPlan,
    (theta, grad, state): StepInputs<D>,
) -> Result<(Tensor<D>, RAdamState<D>), StepInputs<D>> {
    let all_f32 = radam_core::all_f32!(&theta, &grad, &state);
    // Asked of the device, so that no tensor is touched (or its buffer shared) on other backends.
    if !all_f32 || theta.device().without_autodiff() != Device::flex() {
        return Err((theta, grad, state));
    }
    // g, m and v live where θ does: the module optimizer moved them there.
    let flex = |tensor: Tensor<D>, what: &str| {
        tensor
            .try_into_primitive::<Flex>()
            .unwrap_or_else(|error| panic!("RAdam: θ is on flex but {what} is not: {error:?}"))
    };
    let theta_flex = flex(theta, "θ");
    let grad = flex(grad, "the gradient");
    let (m, v) = match state {
        Some(state) => (flex(state.m, "m_t"), flex(state.v, "v_t")),
        // m_0 = v_0 = 0: the only allocation, on a parameter's first step.
        None => {
            let zeros = || FlexTensor::zeros(theta_flex.layout().shape().clone(), DType::F32);
            (zeros(), zeros())
        }
    };
    let (mut theta, grad, mut m, mut v) = (
        contiguous(theta_flex),
        contiguous(grad),
        contiguous(m),
        contiguous(v),
    );
    update(
        &Scalars::new(plan),
        elements_mut(&mut theta),
        grad.as_slice::<f32>().expect("contiguous f32"),
        elements_mut(&mut m),
        elements_mut(&mut v),
    );
    let state = RAdamState {
        time: plan.time,
        m: Tensor::from_primitive::<Flex>(m),
        v: Tensor::from_primitive::<Flex>(v),
    };
    Ok((Tensor::from_primitive::<Flex>(theta), state))
}

/// `tensor` with its elements in one contiguous run of its buffer (copied only if they were not).
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().contiguous_offsets().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The elements of a contiguous tensor, writable in place (copied first if its buffer is shared).
fn elements_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("made contiguous");
    &mut tensor.storage_mut::<f32>()[start..end]
}

#[cfg(test)]
mod tests {
    use burn::tensor::{FloatDType, TensorData};
    use radam_core::Hyper;

    use super::*;
    use crate::RAdamConfig;

    fn configs() -> Vec<(&'static str, RAdamConfig)> {
        let configurations = radam_core::reference_data::kernel_configurations();
        let config = |(name, fields)| (name, RAdamConfig::from_fields(&fields));
        configurations.into_iter().map(config).collect()
    }

    fn hyper(config: &RAdamConfig) -> Hyper {
        config.fields().hyper()
    }

    /// Values of mixed signs and magnitudes from an integer hash, every seventh exactly zero.
    fn values(n: usize, salt: u64, scale: f32) -> Vec<f32> {
        (0..n as u64)
            .map(|i| {
                if i % 7 == 3 {
                    return 0.0;
                }
                let h = (i ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .wrapping_mul(0xD6E8_FEB8_6659_FD93);
                let unit = (h >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                (unit * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn tensor(values: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    fn bits(tensor: &Tensor<1>) -> Vec<u32> {
        let values = tensor.to_data().try_to_vec::<f32>().unwrap();
        // +0 and −0 alike: the fused step starts from m = v = +0, the tensor-op step from the
        // first gradient's terms, so a gradient of −0 gives −0 there.
        values
            .into_iter()
            .map(|v| if v == 0.0 { 0 } else { v.to_bits() })
            .collect()
    }

    /// One step both ways from the same θ, g and state; the two results must be the same bits.
    fn both_ways(
        plan: &StepPlan,
        theta: &[f32],
        grad: &[f32],
        moments: Option<(&[f32], &[f32])>,
        what: &str,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let device = Device::flex();
        let state = |(m, v): (&[f32], &[f32])| RAdamState {
            time: plan.time - 1,
            m: tensor(m, &device),
            v: tensor(v, &device),
        };
        let fused = try_fused_step(
            plan,
            (
                tensor(theta, &device),
                tensor(grad, &device),
                moments.map(state),
            ),
        );
        let (fused_theta, fused_state) = fused.unwrap_or_else(|_| panic!("{what}: not fused"));
        let moments = moments.map(|(m, v)| (tensor(m, &device), tensor(v, &device)));
        let (theta_t, m_t, v_t) = radam_core::tensor_op_step!(
            plan,
            tensor(theta, &device),
            tensor(grad, &device),
            moments
        );
        for (name, fused, reference) in [
            ("θ", &fused_theta, &theta_t),
            ("m", &fused_state.m, &m_t),
            ("v", &fused_state.v, &v_t),
        ] {
            let (a, b) = (bits(fused), bits(reference));
            if let Some(i) = (0..a.len()).find(|&i| {
                a[i] != b[i] && !(f32::from_bits(a[i]).is_nan() && f32::from_bits(b[i]).is_nan())
            }) {
                panic!(
                    "{what}, {name}, element {i}: fused {:e}, tensor ops {:e}",
                    f32::from_bits(a[i]),
                    f32::from_bits(b[i])
                );
            }
        }
        assert_eq!(fused_state.time, plan.time);
        let read = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        (read(fused_theta), read(fused_state.m), read(fused_state.v))
    }

    /// Every configuration, eight steps from a fresh state (the momentum phase, then rectified
    /// steps), sizes from one element to past the parallel chunk (2^16): the same bits as the
    /// tensor-op step, θ, m_t and v_t.
    #[test]
    fn the_fused_step_is_the_tensor_op_step_bit_for_bit() {
        for (name, config) in configs() {
            let hyper = hyper(&config);
            for n in [1, 7, 1001, 65_537, 200_003] {
                let mut theta = values(n, 1, 1.0);
                let mut moments: Option<(Vec<f32>, Vec<f32>)> = None;
                for t in 1..=8 {
                    let plan = StepPlan::new(&hyper, t, 1e-2);
                    let grad = values(n, 10 + t as u64, 10f32.powi(t as i32 % 5 - 3));
                    let what = format!("{name}, n = {n}, step {t}");
                    let current = moments.as_ref().map(|(m, v)| (m.as_slice(), v.as_slice()));
                    let (next, m, v) = both_ways(&plan, &theta, &grad, current, &what);
                    theta = next;
                    moments = Some((m, v));
                }
            }
        }
    }

    /// 2^24 + 1 elements (where an f32 count rounds), one rectified step with decoupled and with
    /// coupled decay.
    #[test]
    fn the_largest_odd_size_is_exact_too() {
        let n = (1 << 24) + 1;
        let (theta, grad) = (values(n, 1, 1.0), values(n, 2, 0.1));
        let (m, v) = (
            values(n, 3, 0.01),
            values(n, 4, 1e-3).iter().map(|v| v * v).collect::<Vec<_>>(),
        );
        for config in [
            RAdamConfig::new().with_weight_decay(0.1),
            RAdamConfig::new()
                .with_weight_decay(0.1)
                .with_decoupled_weight_decay(true),
        ] {
            let plan = StepPlan::new(&hyper(&config), 7, 1e-3);
            both_ways(&plan, &theta, &grad, Some((&m, &v)), "n = 2^24 + 1");
        }
    }

    /// Only flex `f32` tensors are fused; others come back untouched for the tensor-op step.
    #[test]
    #[allow(deprecated)] // burn-ndarray, deprecated in Burn 0.22
    fn other_backends_and_dtypes_are_handed_back() {
        let plan = StepPlan::new(&hyper(&RAdamConfig::new()), 1, 1e-3);
        let on = |device: &Device, dtype| {
            let theta = tensor(&[1.0, 2.0, 3.0], device).cast(dtype);
            let grad = tensor(&[0.5, 0.5, 0.5], device).cast(dtype);
            try_fused_step(&plan, (theta, grad, None)).is_ok()
        };
        assert!(on(&Device::flex(), FloatDType::F32));
        assert!(!on(&Device::flex(), FloatDType::BF16));
        #[cfg(not(burn_023))]
        {
            assert!(!on(&Device::ndarray(), FloatDType::F32));
            let theta = tensor(&[1.0, 2.0], &Device::ndarray());
            let back = try_fused_step(&plan, (theta.clone(), theta, None))
                .expect_err("ndarray has no fused step");
            assert_eq!(
                back.0.into_data().try_to_vec::<f32>().unwrap(),
                vec![1.0, 2.0]
            );
        }
    }
}
