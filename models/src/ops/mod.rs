//! The operations the layers compute, each on every backend with Burn's tensor operations and
//! on ndarray with a native kernel of its own (`ndarray/`). Which one runs is decided in one
//! place, [`dispatch`], whose documentation is the table of every choice; where several kernels
//! can compute an operation, [`autotune`] times them.

pub mod attention;
pub mod autotune;
pub mod batch_norm;
pub mod conv;
pub mod dispatch;
pub mod dropout;
pub mod gelu;
pub mod im2col;
pub mod layer_norm;
pub mod loss;
pub mod lstm;
pub mod matmul;
#[cfg(feature = "ndarray-kernels")]
pub mod ndarray;
pub(crate) mod reshape;
