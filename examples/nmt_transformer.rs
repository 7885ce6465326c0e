//! Trains a Transformer translation model on an IWSLT-style parallel corpus or the built-in language pair, then test BLEU, with RAdam (or `--optimizer adam|adamw|sgd`) through Burn's `LearnerBuilder`.
//!
//! ```text
//! cargo run --release --example nmt_transformer                      # built-in data, CPU
//! cargo run --release --example nmt_transformer -- --backend wgpu    # on a GPU
//! cargo run --release --example nmt_transformer -- --help            # every flag
//! ```

use radam_train::harness::{exit_on_error, parse_args};
use radam_train::tasks::nmt::{NmtArgs, run};

fn main() -> std::process::ExitCode {
    exit_on_error(|| run(parse_args::<NmtArgs>()).map(drop))
}
