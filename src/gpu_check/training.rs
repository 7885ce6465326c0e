//! Training throughput on the adapter: timed steps of the three models (forward, backward, RAdam
//! step) after untimed ones that pay for autotuning, and data-parallel training on two GPUs
//! against one where the machine has two.

use clap::Parser;

use super::Report;
use crate::backend::{WgpuBackend, discrete_gpus};
use crate::gpu_check::workloads::{Workload, WorkloadSizes};
use crate::tasks::cifar;

/// Measures each model's training throughput: `(untimed, timed)` steps.
pub fn measure_models(
    tiny: bool,
    device: &burn::backend::wgpu::WgpuDevice,
    report: &Report,
    has_time: impl Fn() -> bool,
) {
    let (shapes, untimed, timed) = if tiny {
        (WorkloadSizes::TINY, 1, 1)
    } else {
        (WorkloadSizes::README, 3, 5)
    };
    for workload in Workload::ALL {
        if !has_time() {
            report.note(format!(
                "train-{}: skipped, the budget is spent",
                workload.name()
            ));
            continue;
        }
        let seconds = workload
            .time::<WgpuBackend>(&shapes, untimed, timed, device)
            .as_secs_f64();
        let items = (workload.items_per_step(&shapes) as u64 * timed) as f64;
        report.figure(
            format!("train-{}", workload.name()),
            items / seconds,
            &format!("{}/s", workload.unit()),
        );
    }
}

/// Images per second of one epoch of the CIFAR example (procedural images, ResNet-20, batch 128)
/// on `devices` GPUs.
fn cifar_rate(devices: usize, dir: &std::path::Path) -> Result<f64, String> {
    let images = 128 * 24;
    let args = cifar::CifarArgs::try_parse_from([
        "cifar_resnet".to_string(),
        "--backend".to_string(),
        "wgpu".to_string(),
        "--devices".to_string(),
        devices.to_string(),
        "--images".to_string(),
        images.to_string(),
        "--batch-size".to_string(),
        "128".to_string(),
        "--epochs".to_string(),
        "1".to_string(),
        "--plain".to_string(),
        "--artifact-dir".to_string(),
        dir.join(format!("devices-{devices}")).display().to_string(),
    ])
    .map_err(|e| e.to_string())?;
    let run = cifar::run(args).map_err(|e| e.to_string())?;
    Ok(images as f64 / run.wall_time.as_secs_f64())
}

/// `--devices 2` against one device, through the CIFAR example's data-parallel training, where
/// the machine has two discrete GPUs.
pub fn measure_two_devices(report: &Report, has_time: impl Fn() -> bool) {
    let gpus = discrete_gpus();
    if gpus < 2 {
        report.note(format!(
            "train-devices-2: skipped, {gpus} discrete GPU(s) with a Vulkan driver"
        ));
        return;
    }
    if !has_time() {
        report.note("train-devices-2: skipped, the budget is spent".to_string());
        return;
    }
    let dir = std::env::temp_dir().join(format!("gpu-check-{}", std::process::id()));
    let rates = cifar_rate(1, &dir).and_then(|one| Ok((one, cifar_rate(2, &dir)?)));
    let _ = std::fs::remove_dir_all(&dir);
    match rates {
        Ok((one, two)) => {
            report.figure("train-cifar-devices-1", one, "images/s");
            report.figure("train-cifar-devices-2", two, "images/s");
            report.figure("train-cifar-devices-2-speedup", two / one, "x");
        }
        Err(error) => report.note(format!("train-devices-2: failed: {error}")),
    }
}
