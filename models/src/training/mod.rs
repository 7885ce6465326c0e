//! What Burn's trainer needs around a model: the outputs of a step, the metrics they feed, the
//! parameter count, and the recurrent state an LM carries from one batch to the next.

pub mod carried_state;
pub mod metrics;
pub mod output;
pub mod parameters;
