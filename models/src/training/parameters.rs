//! Counting parameters the way PyTorch users do.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// The number of trainable parameters: elements of tensors that receive gradients, as
/// `sum(p.numel() for p in model.parameters())` counts them in PyTorch.
///
/// Burn's `num_params` also counts running statistics (BatchNorm's mean and variance), which are
/// not trained; this count leaves them out. The model must live on an autodiff backend, where
/// trainable tensors are marked as requiring gradients. Parameters that are not initialised yet
/// (Burn initialises lazily) are counted from their shape without being allocated: Burn creates
/// every lazily initialised parameter as trainable.
pub fn trainable_parameters<B: AutodiffBackend, M: Module<B>>(model: &M) -> usize {
    struct Counter(usize);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Counter {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !param.is_initialized() {
                self.0 += param.lazy_shape().num_elements();
            } else if param.val().is_require_grad() {
                self.0 += param.val().shape().num_elements();
            }
        }
    }
    let mut counter = Counter(0);
    model.visit(&mut counter);
    counter.0
}
