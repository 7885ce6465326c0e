//! `gpu-check`: correctness and speed of RAdam and the training examples on this machine's wgpu
//! adapter. Run it through `tools/gpu-check`, which builds it or finds it beside itself; see
//! [`radam_train::gpu_check`].

fn main() {
    std::process::exit(radam_train::gpu_check::run(std::env::args().skip(1)));
}
