//! # radam-datasets
//!
//! Data for the RAdam paper's experiments as Burn [`Dataset`](burn::data::dataset::Dataset)s and
//! generic [`Batcher`](burn::data::dataloader::batcher::Batcher)s: real file formats read from
//! disk, and procedural data sets with the same item and batch types, so that every program
//! runs on a machine with no network.
//!
//! | task | real data | built-in |
//! | --- | --- | --- |
//! | image classification | [`cifar`] (CIFAR-10/100 binary) | [`shapes`] |
//! | language modelling | [`lm`] (PTB / WikiText, One Billion Word) | [`markov`] (known entropy) |
//! | translation | [`translation`] (IWSLT'14 layout, joint BPE) | [`synthetic_translation`] |
//!
//! Bad input (missing or truncated files, mismatched parallel files, empty corpora, invalid
//! UTF-8) is a [`DataError`] that says where and what.

#![warn(missing_docs)]

mod bpe_learner;
pub mod cifar;
pub mod error;
pub mod files;
pub mod image;
pub mod lm;
pub mod markov;
pub mod shapes;
pub mod spirals;
pub mod synthetic_translation;
pub mod text;
pub mod tokens;
pub mod translation;
pub mod vocab;

pub use batch::{ImageBatch, LmBatch, TranslationBatch};
pub use error::DataError;
/// The batch types the pipelines produce, defined beside the models that read them.
pub use radam_models::batch;
