//! Which kernel computes each operation: the one place in the models that decides.
//!
//! Every operation the models call (`ops/*.rs`) asks this module, computes with the kernel it
//! names, and decides nothing itself; the native kernels (`ops/ndarray/`) only compute.
//!
//! | operation | backend | CPU | shape | kernel |
//! | --- | --- | --- | --- | --- |
//! | every operation below | not ndarray f32 (wgpu, …) | — | — | Burn's tensor operations |
//! | 2-D matrix product, `Linear` on rows | ndarray¹ | — | — | native product, its own backward (GEMM: general); a bias is the output's starting value, its gradient a parallel column sum |
//! | reshape | ndarray¹ | — | row-major | a view of the same buffer, forward and backward (Burn copies both) |
//! | convolution, [`ConvAlgorithm::Auto`] | ndarray¹ | — | — | native convolution (below) |
//! | convolution, [`ConvAlgorithm::Auto`] | other | — | — | Burn's `conv2d` |
//! | convolution, [`ConvAlgorithm::Im2col`] | ndarray¹ / other | — | — | native convolution / im2col with tensor operations |
//! | convolution, [`ConvAlgorithm::Direct`] | any | — | — | Burn's `conv2d` |
//! | native convolution, forward and weight gradient | — | AVX-512F | stride 1 | implicit (shifted views of the padded image, no patch matrix) or im2col + GEMM (convolution)² |
//! | native convolution, input gradient | — | AVX-512F | stride 1, padding < kernel | implicit transposed convolution or im2col + GEMM (convolution)² |
//! | native convolution, any pass | — | otherwise | otherwise | im2col + GEMM (convolution) |
//! | scaled dot-product attention | ndarray¹ | — | softmax, not quiet; masks shared by the heads | native, one task per sentence, heads read in place, its own backward (GEMM: general) |
//! | layer norm | ndarray¹ | — | — | native, one pass, its own backward |
//! | batch norm (+ residual, ReLU), training | `Autodiff<ndarray>`¹ | — | — | native, one pass, its own backward |
//! | batch norm, inference | any | — | — | Burn's `BatchNorm` |
//! | cross-entropy (label smoothing, padding) | ndarray¹ | — | — | native |
//! | dropout, training | ndarray¹ | — | — | native: the mask drawn and applied in parallel, `∂y ⊙ mask` backward |
//! | GELU | ndarray¹ | — | — | native |
//! | LSTM, [`LstmAlgorithm::Fused`] | ndarray¹ / other | — | — | native recurrence (the batch's sequences split across the threads, each running every step of its own) / fused with tensor operations |
//! | LSTM, [`LstmAlgorithm::Stepwise`] | any | — | — | Burn's `Lstm` |
//! | GEMM block (convolution; general) | — | AVX-512F | `b` row-major | + AVX-512 rows kernel (`b` read in place)² |
//! | GEMM block (convolution; general) | — | AVX-512F | `a` row-major, `b` transposed | + AVX-512 dot-product kernel² |
//! | GEMM block (convolution; general) | — | any | any | matrixmultiply's `sgemm` or the `gemm` crate² |
//! | element-wise loops of the native kernels | — | AVX2 and FMA | — | compiled for AVX2 (eight lanes) at run time, else the x86-64 baseline (four); same results |
//!
//! ¹ `NdArray<f32>` or `Autodiff<NdArray<f32>>`, recognised from the type; with the
//! `ndarray-kernels` feature (on by default). "AVX-512F" is the CPU's, unless `RADAM_NO_AVX512`
//! is set, which also leaves matrixmultiply out (it would pick AVX-512 by itself): every product
//! then runs on the `gemm` crate's AVX2 kernels, as on a CPU without AVX-512. The native and tensor-operation paths compute the same function (tested side by side);
//! they differ in speed only.
//!
//! ² Where a row names several kernels, the first call of each shape class times them and keeps
//! the fastest ([`autotune`]; [`KernelSelection::Measured`](autotune::KernelSelection), the
//! default). With [`KernelSelection::Fixed`](autotune::KernelSelection) the fixed rules choose
//! instead: implicit wherever it applies, except weight gradients with padded rows shorter than
//! [`DOT_PRODUCT_MIN_K`]; for the convolution's GEMMs the rows kernel up to
//! [`ROWS_KERNEL_MAX_M`] rows of `c`, else the dot products from [`DOT_PRODUCT_MIN_K`] on, else
//! matrixmultiply; matrixmultiply for every other GEMM. [`prefer`] overrides both for tests
//! that run a model on each kernel in turn.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::autotune::KernelChoices;
#[cfg(feature = "ndarray-kernels")]
use super::autotune::{self, Candidate, ChoiceTable};

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

/// Attention (scores, masks, softmax, weights·values) runs natively on ndarray, except for the
/// quiet softmax and masks that differ between heads, which keep Burn's tensor operations.
pub(crate) fn attention<B: Backend>(
    quiet_softmax: bool,
    masks_shared_by_heads: bool,
) -> Option<Native> {
    native::<B>().filter(|_| !quiet_softmax && masks_shared_by_heads)
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
/// What the dispatch reads of the CPU and the environment, once per process.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Cpu {
    /// AVX-512F.
    avx512: bool,
    /// AVX2 and FMA.
    avx2_fma: bool,
    /// `RADAM_NO_AVX512` is set.
    avx512_switched_off: bool,
}

#[cfg(feature = "ndarray-kernels")]
/// The [`Cpu`] this process runs on.
fn cpu() -> Cpu {
    static FOUND: std::sync::OnceLock<Cpu> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let avx512_switched_off = std::env::var_os("RADAM_NO_AVX512").is_some();
        #[cfg(target_arch = "x86_64")]
        return Cpu {
            avx512: std::arch::is_x86_feature_detected!("avx512f"),
            avx2_fma: std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
            avx512_switched_off,
        };
        #[cfg(not(target_arch = "x86_64"))]
        Cpu {
            avx512: false,
            avx2_fma: false,
            avx512_switched_off,
        }
    })
}

#[cfg(feature = "ndarray-kernels")]
/// Whether the AVX-512 kernels run: the CPU has AVX-512F and `RADAM_NO_AVX512` is not set.
pub(crate) fn has_avx512() -> bool {
    let cpu = cpu();
    cpu.avx512 && !cpu.avx512_switched_off
}

#[cfg(feature = "ndarray-kernels")]
/// Whether the native kernels' element-wise loops run compiled for AVX2 and FMA (eight lanes)
/// rather than for the x86-64 baseline (four): the CPU has both. `RADAM_NO_AVX512` leaves them
/// on, as a CPU without AVX-512 has them.
pub(crate) fn has_avx2() -> bool {
    cpu().avx2_fma
}

#[cfg(feature = "ndarray-kernels")]
/// Whether `RADAM_NO_AVX512` holds an AVX-512 CPU to AVX2, as a CPU without AVX-512 runs: then
/// matrixmultiply, which picks its AVX-512 kernel by itself at run time, is no candidate either,
/// and the `gemm` crate (AVX2 and FMA) computes every product of the native kernels.
fn avx2_only_on_an_avx512_cpu() -> bool {
    let cpu = cpu();
    cpu.avx512 && cpu.avx512_switched_off
}

#[cfg(feature = "ndarray-kernels")]
/// A pass of the native convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConvShape {
    /// Input `[batch, channels, height, width]`.
    pub(crate) input: [usize; 4],
    /// Output channels.
    pub(crate) out_channels: usize,
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
/// The kernels that can compute `pass` for a convolution of `shape`, the fixed rules' choice
/// first: the implicit convolution where the CPU has AVX-512F and the pass is stride 1 (and, for
/// the input gradient, padding narrower than the kernel), and im2col always. The fixed rules
/// leave weight gradients with padded rows shorter than [`DOT_PRODUCT_MIN_K`] to im2col.
pub(crate) fn conv_candidates(pass: ConvPass, shape: ConvShape) -> Vec<ConvKernel> {
    let ConvShape {
        stride,
        padding,
        kernel,
        patches,
        padded_row,
        ..
    } = shape;
    let implicit = has_avx512()
        && stride == [1, 1]
        && patches > 0
        && match pass {
            ConvPass::Forward | ConvPass::WeightGradient => true,
            ConvPass::InputGradient => padding[0] < kernel[0] && padding[1] < kernel[1],
        };
    if !implicit {
        vec![ConvKernel::Im2col]
    } else if pass == ConvPass::WeightGradient && padded_row < DOT_PRODUCT_MIN_K {
        vec![ConvKernel::Im2col, ConvKernel::Implicit]
    } else {
        vec![ConvKernel::Implicit, ConvKernel::Im2col]
    }
}

#[cfg(feature = "ndarray-kernels")]
/// A convolution pass's shape class: the pass and the exact shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConvClass(ConvPass, ConvShape);

#[cfg(feature = "ndarray-kernels")]
impl std::fmt::Display for ConvClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ConvClass(pass, shape) = self;
        let [n, c, h, w] = shape.input;
        let pass = match pass {
            ConvPass::Forward => "forward",
            ConvPass::WeightGradient => "weight gradient",
            ConvPass::InputGradient => "input gradient",
        };
        write!(
            f,
            "conv {pass}: {n}×{c}×{h}×{w} → {}, kernel {}×{}, stride {}×{}, padding {}×{}",
            shape.out_channels,
            shape.kernel[0],
            shape.kernel[1],
            shape.stride[0],
            shape.stride[1],
            shape.padding[0],
            shape.padding[1]
        )
    }
}

#[cfg(feature = "ndarray-kernels")]
impl Candidate for ConvKernel {
    const ALL: &'static [Self] = &[ConvKernel::Implicit, ConvKernel::Im2col];

    fn needs_avx512(self) -> bool {
        self == ConvKernel::Implicit
    }

    fn name(self) -> &'static str {
        match self {
            ConvKernel::Implicit => "implicit",
            ConvKernel::Im2col => "im2col",
        }
    }
}

#[cfg(feature = "ndarray-kernels")]
/// The convolution passes' choices.
static CONV_CHOICES: ChoiceTable<ConvClass, ConvKernel> = ChoiceTable::new();

#[cfg(feature = "ndarray-kernels")]
/// The kernel of `pass` for a convolution of `shape`: among [`conv_candidates`], as the
/// [selection](autotune::selection) says (`run` computes the pass with a candidate, for timing).
pub(crate) fn conv_kernel(
    pass: ConvPass,
    shape: ConvShape,
    run: impl FnMut(ConvKernel),
) -> ConvKernel {
    CONV_CHOICES.choose(ConvClass(pass, shape), || conv_candidates(pass, shape), run)
}

#[cfg(feature = "ndarray-kernels")]
/// Which products a GEMM serves, for [`gemm_kernel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// The `gemm` crate's packed kernel (the one faer and candle use; AVX2 and FMA on x86-64).
    Gemm,
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
/// One block of a GEMM, `m × k` by `k × n`, as far as the choice of its kernel depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GemmBlock {
    /// Which products it serves.
    pub(crate) product: Product,
    /// Rows of `a` and `c`.
    pub(crate) m: usize,
    /// The common dimension.
    pub(crate) k: usize,
    /// Columns of `b` and `c`.
    pub(crate) n: usize,
    /// `a` has rows of contiguous elements.
    pub(crate) a_row_major: bool,
    /// `b` has rows of contiguous elements.
    pub(crate) b_row_major: bool,
    /// `b` is the transpose of a matrix with rows of contiguous elements.
    pub(crate) b_transposed: bool,
}

#[cfg(feature = "ndarray-kernels")]
/// The kernels that can compute `block`, the fixed rules' choice first: the AVX-512 rows kernel
/// where `b` is row-major, the AVX-512 dot products where `a` is row-major and `b` transposed
/// (both on AVX-512F CPUs), matrixmultiply and the `gemm` crate always — the `gemm` crate alone
/// where `RADAM_NO_AVX512` holds an AVX-512 CPU to AVX2. The fixed rules use the AVX-512 kernels
/// for the convolution's products only, the rows kernel up to [`ROWS_KERNEL_MAX_M`] rows and the
/// dot products from [`DOT_PRODUCT_MIN_K`] on, and otherwise matrixmultiply.
pub(crate) fn gemm_candidates(block: GemmBlock) -> Vec<GemmKernel> {
    let GemmBlock {
        product,
        m,
        k,
        a_row_major,
        b_row_major,
        b_transposed,
        ..
    } = block;
    let avx = has_avx512() && k > 0;
    let rows = avx && b_row_major;
    let dots = avx && b_transposed && a_row_major;
    let fixed = if product == Product::Convolution && rows && m <= ROWS_KERNEL_MAX_M {
        GemmKernel::AvxRows
    } else if product == Product::Convolution && dots && k >= DOT_PRODUCT_MIN_K {
        GemmKernel::AvxDotProducts
    } else {
        GemmKernel::MatrixMultiply
    };
    if avx2_only_on_an_avx512_cpu() {
        return vec![GemmKernel::Gemm];
    }
    let mut candidates = vec![fixed];
    for (usable, kernel) in [
        (rows, GemmKernel::AvxRows),
        (dots, GemmKernel::AvxDotProducts),
        (true, GemmKernel::MatrixMultiply),
        (true, GemmKernel::Gemm),
    ] {
        if usable && kernel != fixed {
            candidates.push(kernel);
        }
    }
    candidates
}

#[cfg(feature = "ndarray-kernels")]
/// A GEMM block's shape class: its layout and each dimension rounded up to a power of two (the
/// Transformer's products change length with every batch). An empty dimension stays 0: the
/// AVX-512 kernels need a common dimension of at least 1, so `k = 0` must not share the class of
/// `k = 1`, whose kernel they may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct GemmClass(GemmBlock);

#[cfg(feature = "ndarray-kernels")]
impl GemmClass {
    fn of(block: GemmBlock) -> Self {
        let round = |x: usize| if x == 0 { 0 } else { x.next_power_of_two() };
        Self(GemmBlock {
            m: round(block.m),
            k: round(block.k),
            n: round(block.n),
            ..block
        })
    }
}

#[cfg(feature = "ndarray-kernels")]
impl std::fmt::Display for GemmClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        let product = match b.product {
            Product::Convolution => "convolution",
            Product::General => "general",
        };
        let layout = |row_major: bool, transposed: bool| match (row_major, transposed) {
            (true, _) => "rows",
            (false, true) => "columns",
            (false, false) => "strided",
        };
        write!(
            f,
            "gemm {product}: m≤{} k≤{} n≤{}, a {}, b {}",
            b.m,
            b.k,
            b.n,
            layout(b.a_row_major, !b.a_row_major),
            layout(b.b_row_major, b.b_transposed)
        )
    }
}

#[cfg(feature = "ndarray-kernels")]
impl Candidate for GemmKernel {
    const ALL: &'static [Self] = &[
        GemmKernel::AvxRows,
        GemmKernel::AvxDotProducts,
        GemmKernel::MatrixMultiply,
        GemmKernel::Gemm,
    ];

    fn needs_avx512(self) -> bool {
        matches!(self, GemmKernel::AvxRows | GemmKernel::AvxDotProducts)
    }

    fn name(self) -> &'static str {
        match self {
            GemmKernel::AvxRows => "avx512-rows",
            GemmKernel::AvxDotProducts => "avx512-dot-products",
            GemmKernel::MatrixMultiply => "matrixmultiply",
            GemmKernel::Gemm => "gemm",
        }
    }
}

#[cfg(feature = "ndarray-kernels")]
/// The GEMM blocks' choices.
static GEMM_CHOICES: ChoiceTable<GemmClass, GemmKernel> = ChoiceTable::new();

#[cfg(feature = "ndarray-kernels")]
/// The register kernel of `block`: among [`gemm_candidates`], as the
/// [selection](autotune::selection) says (`run` computes the block with a candidate into
/// scratch space, for timing).
pub(crate) fn gemm_kernel(block: GemmBlock, run: impl FnMut(GemmKernel)) -> GemmKernel {
    GEMM_CHOICES.choose(GemmClass::of(block), || gemm_candidates(block), run)
}

/// Reuses `choices` (a resumed run's, or another run's to reproduce it): every shape class they
/// name computes with the kernel they name, untimed, from now on in this process.
///
/// # Errors
/// A kernel this build does not know, or one this CPU cannot run (an AVX-512 kernel where the
/// CPU has no AVX-512F or `RADAM_NO_AVX512` is set): the choices cannot be reproduced here.
pub fn replay(choices: &KernelChoices) -> Result<(), String> {
    #[cfg(feature = "ndarray-kernels")]
    {
        /// Whether this CPU runs the kernel of kind `V` called `name`; `None` if there is none.
        fn runnable<V: Candidate>(name: &str) -> Option<bool> {
            V::ALL
                .iter()
                .find(|kernel| kernel.name() == name)
                .map(|kernel| !kernel.needs_avx512() || has_avx512())
        }
        for (class, name) in &choices.kernels {
            // The classes' names begin with their operation (see `ConvClass`, `GemmClass`).
            let runnable = if class.starts_with("conv ") {
                runnable::<ConvKernel>(name)
            } else {
                runnable::<GemmKernel>(name)
            };
            match runnable {
                None => return Err(format!("unknown kernel {name:?} for {class:?}")),
                Some(false) => {
                    return Err(format!(
                        "kernel {name} (for {class}) needs AVX-512F, which this CPU lacks or \
                         RADAM_NO_AVX512 turns off"
                    ));
                }
                Some(true) => {}
            }
        }
        autotune::preload(&choices.kernels);
    }
    #[cfg(not(feature = "ndarray-kernels"))]
    let _ = choices;
    Ok(())
}

/// Makes every operation with several candidate kernels use the first of `kernels` among its
/// candidates, and the fixed rules' kernel where none of them is one, from now on in this
/// process; `&[]` goes back to the [selection](autotune::selection) (the choices measured before
/// are kept). Nothing is timed or recorded meanwhile. For tests and comparisons that run a model
/// on each kernel in turn: `prefer(&["im2col", "gemm"])` computes every convolution by im2col
/// and every product on the `gemm` crate. A kernel this CPU cannot run is never a candidate, so
/// naming it changes nothing. The kernels' names: `implicit`, `im2col`, `avx512-rows`,
/// `avx512-dot-products`, `matrixmultiply`, `gemm`.
///
/// # Errors
/// A name that is no kernel's.
pub fn prefer(kernels: &[&str]) -> Result<(), String> {
    #[cfg(feature = "ndarray-kernels")]
    {
        let known = |name: &str| {
            ConvKernel::ALL.iter().any(|kernel| kernel.name() == name)
                || GemmKernel::ALL.iter().any(|kernel| kernel.name() == name)
        };
        if let Some(unknown) = kernels.iter().find(|name| !known(name)) {
            return Err(format!("unknown kernel {unknown:?}"));
        }
        autotune::prefer(kernels);
    }
    #[cfg(not(feature = "ndarray-kernels"))]
    if let Some(unknown) = kernels.first() {
        return Err(format!(
            "unknown kernel {unknown:?}: this build has no native kernels"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferring_an_unknown_kernel_is_refused() {
        // Refused before anything changes: the process's choices stay as they are.
        assert_eq!(
            prefer(&["gemm", "fastest"]).unwrap_err(),
            if cfg!(feature = "ndarray-kernels") {
                "unknown kernel \"fastest\""
            } else {
                "unknown kernel \"gemm\": this build has no native kernels"
            }
        );
    }

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
    fn cpu_kernel_candidates_follow_the_table() {
        use ConvKernel::{Im2col, Implicit};
        use GemmKernel::{AvxDotProducts, AvxRows, Gemm, MatrixMultiply};
        let avx = has_avx512();
        // With AVX-512F: `with` (the fixed rules' choice first); without: im2col or
        // matrixmultiply first, then the rest of `with` that needs no AVX-512.
        let conv = |with: &[ConvKernel]| -> Vec<ConvKernel> {
            if avx { with.to_vec() } else { vec![Im2col] }
        };
        let gemm = |with: &[GemmKernel]| -> Vec<GemmKernel> {
            if avx2_only_on_an_avx512_cpu() {
                vec![Gemm]
            } else if avx {
                with.to_vec()
            } else {
                vec![MatrixMultiply, Gemm]
            }
        };
        let shape = ConvShape {
            input: [8, 64, 32, 32],
            out_channels: 64,
            stride: [1, 1],
            padding: [1, 1],
            kernel: [3, 3],
            patches: 9 * 64 * 1024,
            padded_row: 34 * 32,
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
        let candidates = conv_candidates;
        assert_eq!(
            candidates(ConvPass::Forward, shape),
            conv(&[Implicit, Im2col])
        );
        assert_eq!(candidates(ConvPass::Forward, strided), vec![Im2col]);
        assert_eq!(candidates(ConvPass::Forward, empty), vec![Im2col]);
        assert_eq!(
            candidates(ConvPass::WeightGradient, short_rows),
            conv(&[Im2col, Implicit])
        );
        assert_eq!(
            candidates(ConvPass::WeightGradient, long_rows),
            conv(&[Implicit, Im2col])
        );
        assert_eq!(
            candidates(ConvPass::InputGradient, wide_padding),
            vec![Im2col]
        );
        assert_eq!(
            candidates(ConvPass::InputGradient, shape),
            conv(&[Implicit, Im2col])
        );
        assert_eq!(
            ConvClass(ConvPass::WeightGradient, shape).to_string(),
            "conv weight gradient: 8×64×32×32 → 64, kernel 3×3, stride 1×1, padding 1×1"
        );

        let block = |product, m, k, a_row_major, b_row_major, b_transposed| GemmBlock {
            product,
            m,
            k,
            n: 1000,
            a_row_major,
            b_row_major,
            b_transposed,
        };
        let (conv_rows, general) = (Product::Convolution, Product::General);
        assert_eq!(
            gemm_candidates(block(general, 16, 512, true, true, false)),
            gemm(&[MatrixMultiply, AvxRows, Gemm])
        );
        assert_eq!(
            gemm_candidates(block(conv_rows, 512, 144, true, true, false)),
            gemm(&[AvxRows, MatrixMultiply, Gemm])
        );
        assert_eq!(
            gemm_candidates(block(conv_rows, 513, 144, true, true, false)),
            gemm(&[MatrixMultiply, AvxRows, Gemm])
        );
        assert_eq!(
            gemm_candidates(block(conv_rows, 288, 256, true, false, true)),
            gemm(&[AvxDotProducts, MatrixMultiply, Gemm])
        );
        assert_eq!(
            gemm_candidates(block(conv_rows, 288, 255, true, false, true)),
            gemm(&[MatrixMultiply, AvxDotProducts, Gemm])
        );
        assert_eq!(
            gemm_candidates(block(general, 288, 0, true, true, false)),
            gemm(&[MatrixMultiply, Gemm]),
            "an empty common dimension leaves the AVX-512 kernels out"
        );
        assert_eq!(
            GemmClass::of(block(conv_rows, 288, 255, true, false, true)).to_string(),
            "gemm convolution: m≤512 k≤256 n≤1024, a rows, b columns"
        );
        assert_ne!(
            GemmClass::of(block(general, 8, 0, true, true, false)),
            GemmClass::of(block(general, 8, 1, true, true, false)),
            "an empty common dimension has a class of its own"
        );
    }

    #[cfg(feature = "ndarray-kernels")]
    #[test]
    fn replayed_kernels_must_be_known_and_runnable_here() {
        let choices = |class: &str, kernel: &str| KernelChoices {
            selection: autotune::KernelSelection::Measured,
            kernels: [(class.to_string(), kernel.to_string())].into(),
        };
        let error = replay(&choices(
            "gemm general: m≤8 k≤8 n≤8, a rows, b rows",
            "blas",
        ))
        .unwrap_err();
        assert!(error.starts_with("unknown kernel \"blas\""), "{error}");
        let error = replay(&choices("conv forward: 1×1×1×1 → 1", "avx512-rows")).unwrap_err();
        assert!(error.starts_with("unknown kernel"), "{error}");
        let avx = replay(&choices("gemm test-only: m≤1", "avx512-rows"));
        if has_avx512() {
            assert_eq!(avx, Ok(()));
        } else {
            assert!(avx.unwrap_err().contains("needs AVX-512F"));
        }
        assert_eq!(replay(&choices("conv test-only: 1", "im2col")), Ok(()));
    }
}
