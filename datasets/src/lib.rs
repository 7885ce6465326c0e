//! # radam-datasets
//!
//! Data for the RAdam paper's experiments as Burn [`Dataset`](burn::data::dataset::Dataset)s and
//! generic [`Batcher`](burn::data::dataloader::batcher::Batcher)s: real file formats read from
//! disk, and procedural data sets with the same item and batch types, so that every program
//! runs on a machine with no network.

#![warn(missing_docs)]

pub mod batch;
pub mod spirals;

pub use batch::{ImageBatch, LmBatch, TranslationBatch};
