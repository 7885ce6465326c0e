//! `gpu-check`: correctness and speed of the wgpu path on whatever Vulkan adapter wgpu finds, in
//! one command that fits a short loan of a GPU machine (`tools/gpu-check` runs it).
//!
//! 1. [Correctness](correctness): the fused wgpu RAdam step against Burn tensor operations on
//!    the same adapter, per preset and weight-decay mode, up to 10^8 parameters (and 2^24 + 1,
//!    the size where a launch computed in `f32` would skip the last element).
//! 2. [Step speed](step_speed): fused RAdam, RAdam with tensor operations and Burn's Adam, in
//!    ns per parameter and as a fraction of the bandwidth a kernel of the same traffic reaches.
//! 3. [Training throughput](training) of ResNet-20, the LSTM LM and the Transformer, and two
//!    GPUs against one where there are two.
//!
//! Every figure is printed as `gpu-check <name> <value> <unit>` the moment it is measured and
//! saved to `--json`; when the budget is spent the run stops where it is, keeping what it has.
//! Exit status: 0 when the correctness part passed, 1 when a case failed, 2 for bad flags or no
//! adapter, 3 when the budget ran out before the correctness part finished.

mod correctness;
mod report;
mod step_speed;
mod training;
pub mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::backend::wgpu::WgpuDevice;
use clap::Parser;

pub use report::{Measurement, Report};

/// The command line of `gpu-check`.
#[derive(Parser, Debug)]
#[command(
    name = "gpu-check",
    about = "Correctness and speed of RAdam and the training examples on the wgpu adapter \
             this machine has (run it through tools/gpu-check)"
)]
pub struct GpuCheckArgs {
    /// Small sizes and one timed step per model, for a software renderer (CI's lavapipe).
    #[arg(long)]
    pub tiny: bool,
    /// Stop after this many seconds in all, keeping every figure measured so far
    /// [default: 480, or 150 with --tiny].
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<u64>,
    /// Also write every figure to this JSON file (rewritten after each one).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// Seconds a part needs left to be started.
const MARGIN: Duration = Duration::from_secs(5);

/// Runs `gpu-check` with `args` (without the program name) and returns the exit status. Call it
/// first in `main`, before any thread starts (it sets the CPU defaults the examples run with:
/// [`configure_cpu_runtime`](crate::backend::configure_cpu_runtime)).
pub fn run(args: impl IntoIterator<Item = String>) -> i32 {
    crate::backend::configure_cpu_runtime();
    let args =
        match GpuCheckArgs::try_parse_from(std::iter::once("gpu-check".to_string()).chain(args)) {
            Ok(args) => args,
            Err(error) => {
                let _ = error.print();
                return if error.use_stderr() { 2 } else { 0 };
            }
        };
    if let Some(path) = &args.json
        && let Err(why) = check_writable(path)
    {
        eprintln!("error: --json {}: {why}", path.display());
        return 2;
    }
    let adapter = match crate::backend::wgpu_adapter() {
        Ok(adapter) => adapter,
        Err(error) => {
            eprintln!("gpu-check: {error}");
            return 2;
        }
    };
    let started = Instant::now();
    let budget = Duration::from_secs(args.budget.unwrap_or(if args.tiny { 150 } else { 480 }));
    let deadline = started + budget;
    println!("gpu-check adapter {adapter}");
    let report = Arc::new(Report::new(adapter.to_string(), args.json.clone()));
    stop_at(deadline, budget, Arc::clone(&report));
    let has_time = || Instant::now() + MARGIN < deadline;

    let device = WgpuDevice::DefaultDevice;
    let mut finished = true;
    for n in correctness::sizes(args.tiny) {
        if !has_time() {
            report.note(format!(
                "step-diff at n = {n} and beyond: skipped, the budget is spent"
            ));
            finished = false;
            break;
        }
        correctness::check_size(n, &device, &report);
    }
    if finished {
        report.correctness_done();
    }
    for n in step_speed::sizes(args.tiny) {
        if !has_time() {
            report.note(format!(
                "step speed at n = {n}: skipped, the budget is spent"
            ));
            continue;
        }
        step_speed::measure_size(n, &device, &report);
    }
    training::measure_models(args.tiny, &device, &report, has_time);
    if !args.tiny {
        training::measure_two_devices(&report, has_time);
    }
    report.figure("wall-time", started.elapsed().as_secs_f64(), "s");
    report.all_done();
    report.exit_code()
}

/// Whether the report can be written to `path`, tried before any measurement: a temporary file
/// beside it is created and removed.
fn check_writable(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a directory".to_string());
    }
    let partial = crate::run_dir::partial_path(path);
    std::fs::File::create(&partial).map_err(|error| error.to_string())?;
    std::fs::remove_file(&partial).ok();
    Ok(())
}

/// Ends the process at `deadline`, with what `report` holds by then.
fn stop_at(deadline: Instant, budget: Duration, report: Arc<Report>) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        report.note(format!(
            "the budget of {} s is spent: stopping here (raise it with --budget)",
            budget.as_secs()
        ));
        std::process::exit(report.exit_code());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_json_path_is_named_before_any_measurement() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_writable(dir.path()).unwrap_err(), "is a directory");
        let error = check_writable(&dir.path().join("absent/report.json")).unwrap_err();
        assert!(error.contains("(os error 2)"), "{error}");
        assert!(check_writable(&dir.path().join("report.json")).is_ok());
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
