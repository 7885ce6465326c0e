//! Which kernel computes each operation: the one place in the models that decides.
//!
//! Every operation the models call (`ops/*.rs`) asks this module, computes with the kernel it
//! names, and decides nothing itself; the native kernels (`ops/ndarray/`) only compute.
//!
//! | operation | backend | CPU | shape | kernel |
//! | --- | --- | --- | --- | --- |
//! | every operation below | not ndarray f32 (wgpu, …) | — | — | Burn's tensor operations |
//! | 2-D matrix product, `Linear` on rows | ndarray¹ | — | — | native product, its own backward (GEMM: general) |
//! | convolution, [`ConvAlgorithm::Auto`] | ndarray¹ | — | — | native convolution (below) |
//! | convolution, [`ConvAlgorithm::Auto`] | other | — | — | Burn's `conv2d` |
//! | convolution, [`ConvAlgorithm::Im2col`] | ndarray¹ / other | — | — | native convolution / im2col with tensor operations |
//! | convolution, [`ConvAlgorithm::Direct`] | any | — | — | Burn's `conv2d` |
//! | native convolution, forward and weight gradient | — | AVX-512F | stride 1 | implicit: shifted views of the padded image, no patch matrix |
//! | native convolution, input gradient | — | AVX-512F | stride 1, padding < kernel | implicit transposed convolution |
//! | native convolution, any pass | — | otherwise | otherwise | im2col + GEMM (convolution) |
//! | implicit weight gradient | — | AVX-512F | padded row < [`DOT_PRODUCT_MIN_K`] | im2col + GEMM (convolution) instead |
//! | batch norm (+ residual, ReLU), training | `Autodiff<ndarray>`¹ | — | — | native, one pass, its own backward |
//! | batch norm, inference | any | — | — | Burn's `BatchNorm` |
//! | cross-entropy (label smoothing, padding) | ndarray¹ | — | — | native |
//! | dropout mask | ndarray¹ | — | — | native, drawn in parallel |
//! | GELU | ndarray¹ | — | — | native |
//! | LSTM, [`LstmAlgorithm::Fused`] | ndarray¹ / other | — | — | native recurrence / fused with tensor operations |
//! | LSTM, [`LstmAlgorithm::Stepwise`] | any | — | — | Burn's `Lstm` |
//! | GEMM block (convolution) | — | AVX-512F | `b` row-major, `m` ≤ [`ROWS_KERNEL_MAX_M`] | AVX-512 rows kernel (`b` read in place) |
//! | GEMM block (convolution) | — | AVX-512F | `a` row-major, `b` transposed, `k` ≥ [`DOT_PRODUCT_MIN_K`] | AVX-512 dot-product kernel |
//! | GEMM block (convolution, otherwise; general) | — | — | — | matrixmultiply's `sgemm` |
//!
//! ¹ `NdArray<f32>` or `Autodiff<NdArray<f32>>`, recognised from the type; with the
//! `ndarray-kernels` feature (on by default). "AVX-512F" is the CPU's, unless `RADAM_NO_AVX512`
//! is set. The native and tensor-operation paths compute the same function (tested side by side);
//! they differ in speed only.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ndarray-kernels")]
/// The plain ndarray backend the native kernels compute on.
pub(crate) type Inner = burn::backend::NdArray<f32>;
#[cfg(feature = "ndarray-kernels")]
/// [`Inner`] with autodiff, as training runs it.
pub(crate) type Ad = burn::backend::Autodiff<Inner>;

/// How a [`ConvLayer`](crate::conv::ConvLayer) computes its convolution (the same function
/// either way). The measured speeds of each are in `docs/PERFORMANCE.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvAlgorithm {
    /// `Im2col` where it has native kernels (ndarray), `Direct` everywhere else.
    #[default]
    Auto,
    /// Burn's `conv2d` operation and its backward. Fast forward everywhere; on ndarray the
    /// weight gradient is computed as a convolution with the whole output-gradient map as
    /// kernel, which is very slow.
    Direct,
    /// im2col: the input patches are gathered into a matrix and the convolution is a matrix
    /// product, so forward *and* backward are matrix products (weight gradient = output
    /// gradient · patchesᵀ, input gradient = col2im(weightᵀ · output gradient)). On ndarray the
    /// gather and scatter are native kernels and the backward is a custom autodiff operation;
    /// on other backends it is built from tensor operations. Much faster to train on ndarray.
    /// On ndarray on an AVX-512 CPU, stride-1 convolutions skip the patch matrix: the same
    /// products read the patches as shifted views of the padded input.
    Im2col,
}

/// How a [`StackedLstm`](crate::lstm::StackedLstm) runs its recurrence (same parameters, same
/// results).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LstmAlgorithm {
    /// Burn's `Lstm::forward`: eight matrix products per time step (one per gate for the input
    /// and for the hidden state) and a `slice_assign` of every step's output.
    Stepwise,
    /// The input projection of all four gates for the whole sequence in one matrix product,
    /// then one matrix product per step for the recurrent part of all four gates.
    #[default]
    Fused,
}

/// The backend of the native kernels, as the dispatch recognised it.
#[cfg_attr(not(feature = "ndarray-kernels"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Native {
    /// `NdArray<f32>`: the forward pass only.
    NdArray,
    /// `Autodiff<NdArray<f32>>`: the forward pass and a backward of the kernel's own.
    NdArrayAutodiff,
}

/// Whether the types `T` and `U` are the same.
#[cfg(feature = "ndarray-kernels")]
fn same_type<T: 'static, U: 'static>() -> bool {
    core::any::TypeId::of::<T>() == core::any::TypeId::of::<U>()
}

/// `B` as the native kernels know it, or `None`: every operation without its own row in the
/// table runs natively exactly when this is `Some`.
pub(crate) fn native<B: Backend>() -> Option<Native> {
    #[cfg(feature = "ndarray-kernels")]
    {
        if same_type::<B, Inner>() {
            return Some(Native::NdArray);
        }
        if same_type::<B, Ad>() {
            return Some(Native::NdArrayAutodiff);
        }
    }
    None
}

/// Training-mode batch norm runs natively on `Autodiff<NdArray<f32>>` only (inference uses the
/// running statistics, which Burn's module computes as fast).
pub(crate) fn batch_norm<B: Backend>() -> Option<Native> {
    native::<B>().filter(|&native| native == Native::NdArrayAutodiff)
}

/// How a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Convolution {
    /// The native convolution, whose passes [`conv_kernel`] assigns.
    Native(Native),
    /// im2col with Burn's tensor operations.
    Im2colTensorOps,
    /// Burn's `conv2d`.
    Direct,
}

/// The route of a convolution with `algorithm` on `B`.
pub(crate) fn convolution<B: Backend>(algorithm: ConvAlgorithm) -> Convolution {
    match (algorithm, native::<B>()) {
        (ConvAlgorithm::Direct, _) | (ConvAlgorithm::Auto, None) => Convolution::Direct,
        (ConvAlgorithm::Im2col, None) => Convolution::Im2colTensorOps,
        (ConvAlgorithm::Auto | ConvAlgorithm::Im2col, Some(native)) => Convolution::Native(native),
    }
}

/// How an LSTM layer runs its recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recurrence {
    /// The native recurrence.
    Native(Native),
    /// The fused recurrence with Burn's tensor operations.
    FusedTensorOps,
    /// Burn's `Lstm::forward`.
    Stepwise,
}

/// The route of an LSTM layer with `algorithm` on `B`.
pub(crate) fn recurrence<B: Backend>(algorithm: LstmAlgorithm) -> Recurrence {
    match (algorithm, native::<B>()) {
        (LstmAlgorithm::Stepwise, _) => Recurrence::Stepwise,
        (LstmAlgorithm::Fused, None) => Recurrence::FusedTensorOps,
        (LstmAlgorithm::Fused, Some(native)) => Recurrence::Native(native),
    }
}

#[cfg(feature = "ndarray-kernels")]
/// Whether the AVX-512 kernels run: the CPU has AVX-512F and `RADAM_NO_AVX512` is not set
/// (which leaves every product to matrixmultiply, for comparison).
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::env::var_os("RADAM_NO_AVX512").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(feature = "ndarray-kernels")]
/// A pass of the native convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvPass {
    /// `y = W · patches(x)`.
    Forward,
    /// `∂W = ∂y · patches(x)ᵀ`.
    WeightGradient,
    /// `∂x = col2im(Wᵀ · ∂y)`.
    InputGradient,
}

#[cfg(feature = "ndarray-kernels")]
/// The kernel of one pass of the native convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKernel {
    /// The implicit convolution (x86-64, AVX-512F): the products read the patches as shifted
    /// views of the padded image.
    Implicit,
    /// The patch matrix, then [`Product::Convolution`] GEMMs.
    Im2col,
}

#[cfg(feature = "ndarray-kernels")]
/// The shape of a convolution, as far as the choice of its kernels depends on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvShape {
    /// Stride (rows, columns).
    pub(crate) stride: [usize; 2],
    /// Zero padding (rows, columns).
    pub(crate) padding: [usize; 2],
    /// Kernel size (rows, columns).
    pub(crate) kernel: [usize; 2],
    /// Elements of one image's patch matrix (0 for an empty convolution).
    pub(crate) patches: usize,
    /// Length of a row of the padded image as the implicit convolution lays it out.
    pub(crate) padded_row: usize,
}

#[cfg(feature = "ndarray-kernels")]
/// The kernel of `pass` for a convolution of `shape`.
pub(crate) fn conv_kernel(pass: ConvPass, shape: ConvShape) -> ConvKernel {
    let ConvShape {
        stride,
        padding,
        kernel,
        patches,
        padded_row,
    } = shape;
    let implicit = has_avx512()
        && stride == [1, 1]
        && patches > 0
        && match pass {
            ConvPass::Forward => true,
            ConvPass::WeightGradient => padded_row >= DOT_PRODUCT_MIN_K,
            ConvPass::InputGradient => padding[0] < kernel[0] && padding[1] < kernel[1],
        };
    if implicit {
        ConvKernel::Implicit
    } else {
        ConvKernel::Im2col
    }
}

#[cfg(feature = "ndarray-kernels")]
/// Which products a GEMM serves, for [`gemm_kernel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Product {
    /// The convolution's skinny per-image products, where reading the larger operand in place
    /// pays (measured on ResNet-20: 1.3× the whole step on an AMD Zen 5).
    Convolution,
    /// Every other product (the LSTM's, the Transformer's), where the AVX-512 kernels were
    /// slower or no faster than matrixmultiply.
    General,
}

#[cfg(feature = "ndarray-kernels")]
/// The register kernel of one block of a GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GemmKernel {
    /// AVX-512, `a`'s rows packed, `b`'s rows read in place.
    AvxRows,
    /// AVX-512, one dot product per element of `c` over `a`'s and `bᵀ`'s rows.
    AvxDotProducts,
    /// matrixmultiply's packed kernel.
    MatrixMultiply,
}

#[cfg(feature = "ndarray-kernels")]
/// Shortest common dimension for which [`GemmKernel::AvxDotProducts`], one horizontal sum per
/// element of `c`, is used: matrixmultiply was 1.9× as fast at 64 (576 × 64 × 64) and 1.3× at
/// 128 (560 × 128 × 10 000), ours 1.6× at 256 and 5× at 1024 (ResNet-20's weight-gradient shapes
/// 288 × 256 × 32 and 144 × 1024 × 16; measured on 2 cores of an AMD Zen 5).
pub(crate) const DOT_PRODUCT_MIN_K: usize = 256;

#[cfg(feature = "ndarray-kernels")]
/// Most rows of `c` for which [`GemmKernel::AvxRows`] is used. Its advantage is that `b` is not
/// copied: with few rows of `a` matrixmultiply's packing of `b` is a large share of the product
/// (16 × 144 × 1024, ResNet-20's first stage: 157 against 54 GFLOP/s), while on large products
/// matrixmultiply's packed 16 × 16 kernel is as fast or faster (1024 × 256 × 1024: 161 against
/// 202).
pub(crate) const ROWS_KERNEL_MAX_M: usize = 512;

#[cfg(feature = "ndarray-kernels")]
/// The kernel of an `m × k` by `k × n` block of a `product`, whose `b` has rows of contiguous
/// elements (`b_row_major`) or is the transpose of such a matrix (`b_transposed`), and whose `a`
/// is row-major (`a_row_major`).
pub(crate) fn gemm_kernel(
    product: Product,
    m: usize,
    k: usize,
    a_row_major: bool,
    b_row_major: bool,
    b_transposed: bool,
) -> GemmKernel {
    if product == Product::Convolution && has_avx512() {
        if b_row_major && m <= ROWS_KERNEL_MAX_M && k > 0 {
            return GemmKernel::AvxRows;
        }
        if b_transposed && a_row_major && k >= DOT_PRODUCT_MIN_K {
            return GemmKernel::AvxDotProducts;
        }
    }
    GemmKernel::MatrixMultiply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_alone_decides_where_no_algorithm_is_chosen() {
        type Other = burn::backend::Autodiff<burn::backend::NdArray<f64>>;
        assert_eq!(native::<Other>(), None, "f64 ndarray has no native kernels");
        #[cfg(feature = "ndarray-kernels")]
        {
            assert_eq!(native::<Inner>(), Some(Native::NdArray));
            assert_eq!(native::<Ad>(), Some(Native::NdArrayAutodiff));
            assert_eq!(batch_norm::<Inner>(), None);
            assert_eq!(batch_norm::<Ad>(), Some(Native::NdArrayAutodiff));
            assert_eq!(
                convolution::<Ad>(ConvAlgorithm::Auto),
                Convolution::Native(Native::NdArrayAutodiff)
            );
            assert_eq!(
                convolution::<Ad>(ConvAlgorithm::Direct),
                Convolution::Direct
            );
            assert_eq!(
                recurrence::<Inner>(LstmAlgorithm::Fused),
                Recurrence::Native(Native::NdArray)
            );
        }
        assert_eq!(
            convolution::<Other>(ConvAlgorithm::Auto),
            Convolution::Direct
        );
        assert_eq!(
            convolution::<Other>(ConvAlgorithm::Im2col),
            Convolution::Im2colTensorOps
        );
        assert_eq!(
            recurrence::<Other>(LstmAlgorithm::Fused),
            Recurrence::FusedTensorOps
        );
        assert_eq!(
            recurrence::<Other>(LstmAlgorithm::Stepwise),
            Recurrence::Stepwise
        );
    }

    #[cfg(feature = "ndarray-kernels")]
    #[test]
    fn cpu_kernels_follow_the_table() {
        let avx = has_avx512();
        let implicit = |yes: bool| {
            if yes {
                ConvKernel::Implicit
            } else {
                ConvKernel::Im2col
            }
        };
        let shape = ConvShape {
            stride: [1, 1],
            padding: [1, 1],
            kernel: [3, 3],
            patches: 9 * 64,
            padded_row: 34,
        };
        let strided = ConvShape {
            stride: [2, 2],
            ..shape
        };
        let empty = ConvShape {
            patches: 0,
            ..shape
        };
        let short_rows = ConvShape {
            padded_row: 255,
            ..shape
        };
        let long_rows = ConvShape {
            padded_row: 256,
            ..shape
        };
        let wide_padding = ConvShape {
            padding: [3, 1],
            ..long_rows
        };
        assert_eq!(conv_kernel(ConvPass::Forward, shape), implicit(avx));
        assert_eq!(conv_kernel(ConvPass::Forward, strided), ConvKernel::Im2col);
        assert_eq!(conv_kernel(ConvPass::Forward, empty), ConvKernel::Im2col);
        assert_eq!(
            conv_kernel(ConvPass::WeightGradient, short_rows),
            ConvKernel::Im2col
        );
        assert_eq!(
            conv_kernel(ConvPass::WeightGradient, long_rows),
            implicit(avx)
        );
        assert_eq!(
            conv_kernel(ConvPass::InputGradient, wide_padding),
            ConvKernel::Im2col
        );
        assert_eq!(conv_kernel(ConvPass::InputGradient, shape), implicit(avx));

        let general = gemm_kernel(Product::General, 16, 512, true, true, false);
        assert_eq!(general, GemmKernel::MatrixMultiply);
        let rows = gemm_kernel(Product::Convolution, 512, 144, true, true, false);
        let tall = gemm_kernel(Product::Convolution, 513, 144, true, true, false);
        let dots = gemm_kernel(Product::Convolution, 288, 256, true, false, true);
        let short = gemm_kernel(Product::Convolution, 288, 255, true, false, true);
        if avx {
            assert_eq!(rows, GemmKernel::AvxRows);
            assert_eq!(dots, GemmKernel::AvxDotProducts);
        } else {
            assert_eq!(rows, GemmKernel::MatrixMultiply);
            assert_eq!(dots, GemmKernel::MatrixMultiply);
        }
        assert_eq!(tall, GemmKernel::MatrixMultiply);
        assert_eq!(short, GemmKernel::MatrixMultiply);
    }
}
