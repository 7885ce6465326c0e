//! The networks of the paper's three tasks and the quickstart's classifier, one file each.

pub mod lstm_lm;
pub mod mlp;
pub mod resnet;
pub mod transformer;
