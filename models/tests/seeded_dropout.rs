//! `--seed` repeats a run's dropout: with Burn's generator seeded alike, the native dropout masks
//! (keyed by draws from that generator) come out alike, and successive masks differ.
//!
//! A test binary of its own: it seeds Burn's process-wide generator, which tests running beside
//! it in one binary would draw from in between.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use radam_models::lstm_lm::LstmLmConfig;

type B = Autodiff<NdArray<f32>>;

#[test]
fn seeding_the_backend_repeats_the_dropout_masks() {
    let device = Default::default();
    let config = LstmLmConfig::small(50).with_dropout(0.5);
    let inputs = || {
        Tensor::<B, 2, Int>::from_data(TensorData::from([[1i64, 2, 3, 4], [5, 6, 7, 8]]), &device)
    };
    // Two forward passes of a freshly initialised model after seeding: their hidden features.
    let run = || {
        B::seed(&device, 7);
        let model = config.init::<B>(&device);
        let first = model.hidden(inputs(), None).0.into_data();
        let second = model.hidden(inputs(), None).0.into_data();
        (first, second)
    };
    let (first, second) = run();
    let (first_again, second_again) = run();
    assert_eq!(first, first_again, "the same seed gave other masks");
    assert_eq!(second, second_again, "the same seed gave other masks");
    assert_ne!(first, second, "two passes drew the same masks");
}
