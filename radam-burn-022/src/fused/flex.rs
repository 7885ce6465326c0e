//! The fused step on burn-flex, Burn 0.22's CPU backend: radam-core's single pass over θ, g, m
//! and v (`fused_step::update`, parallel over chunks), in place on flex's buffers, with no
//! per-step allocation.

use burn::backend::Flex;
use burn_flex::FlexTensor;
use radam_core::fused_step::{Scalars, update};

use super::FusedStep;

impl FusedStep for Flex {
    fn radam_step(
        theta: FlexTensor,
        grad: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        scalars: Scalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (mut theta, grad, mut m, mut v) = (
            contiguous(theta),
            contiguous(grad),
            contiguous(m),
            contiguous(v),
        );
        update(
            &scalars,
            elements_mut(&mut theta),
            grad.as_slice::<f32>().expect("contiguous f32"),
            elements_mut(&mut m),
            elements_mut(&mut v),
        );
        (theta, m, v)
    }
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
