//! Native ndarray kernels, with their own backward on `Autodiff<NdArray<f32>>`, for the
//! operations where Burn 0.19.1's ndarray backend is slow to train: convolution (im2col or
//! implicit), the LSTM recurrence, softmax cross-entropy, training-mode batch normalization, the
//! 2-D matrix product, scaled dot-product attention, layer normalization, GELU, dropout
//! masks and reshapes (without a copy).
//!
//! They compute and decide nothing: the [dispatch](crate::ops::dispatch) has recognised the
//! backend and chosen the kernel before any of them is called. Every entry point has one shape,
//! `fn op<B: Backend>(native: Native, inputs…) -> outputs`, where [`Native`] says which of the two
//! ndarray backends `B` is.
//!
//! [`Native`]: crate::ops::dispatch::Native
//!
//! | file | what it holds |
//! | --- | --- |
//! | `bridge.rs` | generic tensors ↔ ndarray arrays and primitives |
//! | `matrix.rs`, `gemm.rs` | the matrix view and the threaded matrix product |
//! | `avx512.rs` | the AVX-512 register kernels (x86-64) |
//! | `fill.rs` | output buffers zeroed and written chunk by chunk on the threads |
//! | `simd.rs` | element-wise loops compiled for AVX2 at run time |
//! | `fast_math.rs` | `exp`, `tanh`, sigmoid without libm calls, so that element-wise loops vectorise |
//! | `conv.rs`, `conv_geometry.rs`, `implicit_conv.rs` | the convolution: im2col, its geometry, the implicit kernels |
//! | one file per other operation | its forward, its backward |

pub(crate) mod attention;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod batch_norm;
mod bridge;
pub(crate) mod conv;
mod conv_geometry;
pub(crate) mod cross_entropy;
pub(crate) mod dropout;
mod fast_math;
mod fill;
pub(crate) mod gelu;
mod gemm;
#[cfg(target_arch = "x86_64")]
mod implicit_conv;
pub(crate) mod layer_norm;
pub(crate) mod lstm;
pub(crate) mod matmul;
mod matrix;
pub(crate) mod reshape;
mod simd;

/// Elements per parallel task of the element-wise kernels (dropout masks, GELU, zero-filling).
const ELEMENTS_PER_TASK: usize = 1 << 14;
