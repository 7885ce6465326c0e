//! Trains ResNet on CIFAR-10/100 or the built-in image set, with RAdam (or `--optimizer adam|adamw|sgd`) through Burn's `LearnerBuilder`.
//!
//! ```text
//! cargo run --release --example cifar_resnet                      # built-in data, CPU
//! cargo run --release --example cifar_resnet -- --backend wgpu    # on a GPU
//! cargo run --release --example cifar_resnet -- --help            # every flag
//! ```

use radam_train::harness::{exit_on_error, parse_args};
use radam_train::tasks::cifar::{CifarArgs, run};

fn main() -> std::process::ExitCode {
    exit_on_error(|| run(parse_args::<CifarArgs>()).map(drop))
}
