//! Training-step throughput of one model on ndarray, for `tools/cpu-speed-vs-torch`: one
//! model per process, so that the process's peak memory is that model's.
//!
//! ```text
//! cargo bench --bench step_speed -- resnet20|lstm|lstm-adaptive|transformer [--steps N] [--repeats R]
//!     [--kernels measured|fixed] [--show-kernels]
//! ```
//!
//! Prints one line per repeat, `<model> <rate> <unit>/s` (images or tokens per second, over
//! `--steps` timed steps after two untimed ones), then to standard error the kernels chosen
//! (`--kernels`, as the training programs take it; the measured choices are made in the first
//! repeat's untimed steps): one summary line, or with `--show-kernels` one line per shape class.
#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::Duration;

use radam_models::kernels::{self, KernelSelection};
use radam_train::backend::NdArrayBackend as B;
use radam_train::gpu_check::workloads::{self, Workload, WorkloadSizes};

/// Untimed steps before each repeat, on a fresh model.
const WARMUP_STEPS: u64 = 2;

/// What to measure: the model, timed steps per repeat, repeats, how kernels are chosen.
struct Request {
    workload: Workload,
    steps: u64,
    repeats: u64,
    kernels: KernelSelection,
    show_kernels: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Request, String> {
    let usage = "usage: step_speed resnet20|lstm|lstm-adaptive|transformer [--steps N] \
                 [--repeats R] [--kernels measured|fixed] [--show-kernels]";
    let name = args.next().ok_or(usage)?;
    let workload = Workload::from_name(&name).ok_or(format!(
        "unknown model `{name}`; expected resnet20, lstm, lstm-adaptive or transformer"
    ))?;
    let mut request = Request {
        workload,
        steps: 3,
        repeats: 3,
        kernels: KernelSelection::Measured,
        show_kernels: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--show-kernels" {
            request.show_kernels = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        if flag == "--kernels" {
            request.kernels =
                KernelSelection::parse(&value).map_err(|e| format!("--kernels {e}"))?;
            continue;
        }
        let number: u64 = value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("{flag} {value}: expected a positive number"))?;
        match flag.as_str() {
            "--steps" => request.steps = number,
            "--repeats" => request.repeats = number,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(request)
}

/// Times the repeats, each on a fresh model after [`WARMUP_STEPS`].
fn measure(request: &Request) -> Vec<Duration> {
    let device = Default::default();
    (0..request.repeats)
        .map(|_| {
            request
                .workload
                .time::<B>(&WorkloadSizes::README, WARMUP_STEPS, request.steps, &device)
        })
        .collect()
}

fn main() -> ExitCode {
    radam_train::backend::configure_cpu_runtime();
    let result = parse(std::env::args().skip(1)).map(|request| {
        kernels::select(request.kernels);
        workloads::warm_up_backend::<B>(&Default::default());
        let workload = request.workload;
        let items = workload.items_per_step(&WorkloadSizes::README);
        for time in measure(&request) {
            let rate = (items as u64 * request.steps) as f64 / time.as_secs_f64();
            println!("{} {rate:.1} {}/s", workload.name(), workload.unit());
        }
        let choices = kernels::choices();
        let how = request.kernels.label();
        if choices.kernels.is_empty() {
            eprintln!("kernels ({how}): one candidate per operation here, nothing to choose");
        } else {
            eprintln!("kernels ({how}): {}", choices.summary());
        }
        if request.show_kernels {
            for (class, kernel) in &choices.kernels {
                eprintln!("  {class} -> {kernel}");
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
