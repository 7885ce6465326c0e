//! The shortest complete program: RAdam trains a small classifier through Burn's
//! `LearnerBuilder`. The training code is [`radam_train::quickstart::train`]
//! (`src/quickstart.rs`), the snippet to copy; this runs it.
//!
//! ```text
//! cargo run --release --example quickstart              # CPU (ndarray)
//! cargo run --release --example quickstart -- wgpu      # GPU (wgpu)
//! cargo run --release --example quickstart -- wgpu 2    # two GPUs, data-parallel
//! ```

/// `quickstart [ndarray|wgpu] [DEVICES]`.
fn main() {
    radam_train::backend::configure_cpu_runtime();
    if let Err(message) =
        radam_train::quickstart::run(&std::env::args().skip(1).collect::<Vec<_>>())
    {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}
