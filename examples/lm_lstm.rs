//! Trains an LSTM language model on PTB / WikiText / One Billion Word or the built-in corpus, with RAdam (or `--optimizer adam|adamw|sgd`) through Burn's `LearnerBuilder`.
//!
//! ```text
//! cargo run --release --example lm_lstm                      # built-in data, CPU
//! cargo run --release --example lm_lstm -- --backend wgpu    # on a GPU
//! cargo run --release --example lm_lstm -- --help            # every flag
//! ```

use radam_train::harness::{exit_on_error, parse_args};
use radam_train::tasks::lm::{LmArgs, run};

fn main() -> std::process::ExitCode {
    exit_on_error(|| run(parse_args::<LmArgs>()).map(drop))
}
