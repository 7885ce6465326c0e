//! The geometry of a convolution and the per-image sum that both of its native kernels (im2col
//! and implicit) accumulate the weight gradient with.

use rayon::prelude::*;

use crate::ops::dispatch::ConvShape;

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
    pub(super) out_height: usize,
    pub(super) out_width: usize,
}

impl Geometry {
    pub(super) fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        let [batch, channels, height, width] = input;
        let [out_channels, weight_channels, kh, kw] = weight;
        assert_eq!(
            channels, weight_channels,
            "convolution: input has {channels} channels, the weight expects {weight_channels}"
        );
        Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            stride,
            padding,
            out_height: (height + 2 * padding[0] - kh) / stride[0] + 1,
            out_width: (width + 2 * padding[1] - kw) / stride[1] + 1,
        }
    }

    /// Rows of the patch matrix: `c·kh·kw`.
    pub(super) fn k(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the patch matrix: `h'·w'`.
    pub(super) fn l(&self) -> usize {
        self.out_height * self.out_width
    }

    /// What the dispatch needs to know of this convolution to choose its kernels.
    pub(super) fn shape(&self) -> ConvShape {
        let padded_height = self.height + 2 * self.padding[0];
        ConvShape {
            input: [self.batch, self.channels, self.height, self.width],
            out_channels: self.out_channels,
            stride: self.stride,
            padding: self.padding,
            kernel: self.kernel,
            patches: self.k() * self.l(),
            // The implicit convolution's wide rows: `h'` rows of the padded width (stride 1).
            padded_row: (padded_height + 1).saturating_sub(self.kernel[0])
                * (self.width + 2 * self.padding[1]),
        }
    }
}

/// `Σ_n term(n)` over the `batch` images, `len` values: each rayon task keeps one running sum
/// and one `scratch` (made once per task), to which `add(n, sum, scratch)` adds image `n`'s term;
/// the tasks' sums are then added.
pub(super) fn batch_sum<S: Send>(
    batch: usize,
    len: usize,
    scratch: impl Fn() -> S + Send + Sync,
    add: impl Fn(usize, &mut [f32], &mut S) + Send + Sync,
) -> Vec<f32> {
    (0..batch)
        .into_par_iter()
        .fold(
            || (vec![0.0_f32; len], scratch()),
            |(mut sum, mut scratch), n| {
                add(n, &mut sum, &mut scratch);
                (sum, scratch)
            },
        )
        .map(|(sum, _)| sum)
        .reduce(
            || vec![0.0_f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}
