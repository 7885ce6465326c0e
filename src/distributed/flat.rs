//! A module's float tensors and their gradients as one flat `f32` buffer, in the module's
//! visiting order — the order every process agrees on, whatever random parameter ids it drew.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// The float tensors of a module (parameters and running statistics), in visiting order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlatTensors {
    /// The values of the selected tensors, one after the other.
    pub values: Vec<f32>,
    /// Element count of every float tensor of the module, selected or not.
    pub sizes: Vec<usize>,
}

struct Flatten<'a, F> {
    select: F,
    index: usize,
    out: &'a mut FlatTensors,
}

impl<B: Backend, F: FnMut(usize) -> bool> ModuleVisitor<B> for Flatten<'_, F> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        self.out.sizes.push(tensor.shape().num_elements());
        if (self.select)(self.index) {
            let data = tensor.into_data().convert::<f32>();
            self.out
                .values
                .extend_from_slice(data.as_slice::<f32>().expect("f32 after convert"));
        }
        self.index += 1;
    }
}

/// The float tensors of `module` for which `select(index)` holds, flattened.
pub fn flatten_module<B: Backend, M: Module<B>>(
    module: &M,
    select: impl FnMut(usize) -> bool,
) -> FlatTensors {
    let mut out = FlatTensors::default();
    module.visit(&mut Flatten {
        select,
        index: 0,
        out: &mut out,
    });
    out
}

struct Unflatten<'a, F> {
    select: F,
    index: usize,
    values: &'a [f32],
}

impl<B: Backend, F: FnMut(usize) -> bool> ModuleMapper<B> for Unflatten<'_, F> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let selected = (self.select)(self.index);
        self.index += 1;
        if !selected {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let (head, rest) = self.values.split_at(shape.num_elements());
        self.values = rest;
        let require_grad = tensor.is_require_grad();
        let replaced =
            Tensor::<B, D>::from_data(TensorData::new(head.to_vec(), shape), &tensor.device())
                .set_require_grad(require_grad);
        Param::from_mapped_value(id, replaced, mapper)
    }
}

/// `module` with the float tensors for which `select(index)` holds replaced by `values`, in
/// visiting order (the inverse of [`flatten_module`]).
///
/// # Panics
/// If `values` holds fewer numbers than the selected tensors.
pub fn load_flat<B: Backend, M: Module<B>>(
    module: M,
    values: &[f32],
    select: impl FnMut(usize) -> bool,
) -> M {
    module.map(&mut Unflatten {
        select,
        index: 0,
        values,
    })
}

/// One step's gradients, flattened in visiting order; zeros stand in for tensors without one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlatGradients {
    /// Gradient values (zeros where `present` is false).
    pub values: Vec<f32>,
    /// Whether each float tensor of the module had a gradient.
    pub present: Vec<bool>,
    /// Element count of every float tensor of the module.
    pub sizes: Vec<usize>,
}

struct GatherGradients<'a> {
    grads: &'a GradientsParams,
    out: &'a mut FlatGradients,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GatherGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let size = param.val().shape().num_elements();
        self.out.sizes.push(size);
        match self.grads.get::<B::InnerBackend, D>(param.id) {
            Some(gradient) => {
                let data = gradient.into_data().convert::<f32>();
                self.out
                    .values
                    .extend_from_slice(data.as_slice::<f32>().expect("f32 after convert"));
                self.out.present.push(true);
            }
            None => {
                self.out.values.extend(std::iter::repeat_n(0.0, size));
                self.out.present.push(false);
            }
        }
    }
}

/// `grads` of `module`, flattened in visiting order.
pub fn flatten_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> FlatGradients {
    let mut out = FlatGradients::default();
    module.visit(&mut GatherGradients {
        grads,
        out: &mut out,
    });
    out
}

struct ScatterGradients<'a> {
    grads: &'a mut GradientsParams,
    values: &'a [f32],
    present: &'a [bool],
    index: usize,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScatterGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.shape();
        let (head, rest) = self.values.split_at(shape.num_elements());
        self.values = rest;
        let present = self.present[self.index];
        self.index += 1;
        self.grads.remove::<B::InnerBackend, D>(param.id);
        if present {
            let gradient = Tensor::<B::InnerBackend, D>::from_data(
                TensorData::new(head.to_vec(), shape),
                &tensor.device(),
            );
            self.grads.register(param.id, gradient);
        }
    }
}

/// Gradients for `module` made of `values` (visiting order): tensor `i` gets one where
/// `present[i]`, and none otherwise.
///
/// # Panics
/// If `values` or `present` are shorter than the module's tensors.
pub fn unflatten_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    mut grads: GradientsParams,
    values: &[f32],
    present: &[bool],
) -> GradientsParams {
    module.visit(&mut ScatterGradients {
        grads: &mut grads,
        values,
        present,
        index: 0,
    });
    grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NdArrayBackend;
    use burn::nn::{Linear, LinearConfig};

    type B = NdArrayBackend;

    #[test]
    fn a_module_survives_flattening_and_loading() {
        let device = Default::default();
        let a: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let b: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let flat = flatten_module(&a, |_| true);
        assert_eq!(flat.sizes, vec![6, 2]);
        assert_eq!(flat.values.len(), 8);
        // b takes a's values but keeps its own parameter ids.
        let b_ids = (b.weight.id, b.bias.as_ref().unwrap().id);
        let b = load_flat(b, &flat.values, |_| true);
        assert_eq!(flatten_module(&b, |_| true), flat);
        assert_eq!((b.weight.id, b.bias.as_ref().unwrap().id), b_ids);
        assert!(b.weight.val().is_require_grad());
        // Only the bias.
        let only_bias = flatten_module(&a, |i| i == 1);
        assert_eq!(only_bias.values, flat.values[6..].to_vec());
    }

    #[test]
    fn gradients_round_trip_and_missing_ones_stay_missing() {
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(2, 2).init(&device);
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0]], &device);
        let grads = model.forward(x).sum().backward();
        let mut grads = GradientsParams::from_grads(grads, &model);
        grads.remove::<<B as AutodiffBackend>::InnerBackend, 1>(model.bias.as_ref().unwrap().id);
        let flat = flatten_gradients(&model, &grads);
        assert_eq!(flat.present, vec![true, false]);
        // d/dW of sum(xW + b) is x for every output column; the missing bias reads as zeros.
        assert_eq!(flat.values, vec![1.0, 1.0, 2.0, 2.0, 0.0, 0.0]);
        let doubled: Vec<f32> = flat.values.iter().map(|v| v * 2.0).collect();
        let grads = unflatten_gradients(&model, grads, &doubled, &[true, true]);
        let again = flatten_gradients(&model, &grads);
        assert_eq!(again.present, vec![true, true]);
        assert_eq!(again.values, doubled);
    }
}
