//! The two backends a run can pick at run time, where a process trains, and a probe that tells
//! whether wgpu can run here.

use std::fmt;
use std::sync::OnceLock;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, NdArray, Wgpu};
use serde::{Deserialize, Serialize};

/// Sets two process-wide defaults for training on the CPU; every program of this crate calls it
/// first thing in `main` (through [`parse_args`](crate::harness::parse_args) for the command
/// lines).
///
/// - matrixmultiply, the matrix product under Burn's ndarray backend and the native kernels,
///   multiplies on the calling thread unless `MATMUL_NUM_THREADS` says otherwise: training is
///   already parallel one level up (rayon over images, batches, channels, or the native GEMM's
///   own split), and matrixmultiply's threads on top oversubscribe the cores (measured on
///   2 cores: ResNet-20 steps +20 %, Transformer +10 %).
/// - On Linux with glibc, freed memory stays in the heap for the next step (`mallopt`:
///   mmap threshold and trim threshold 2 GiB) instead of going back to the kernel: a training
///   step frees and allocates the same large activation buffers every time, and glibc otherwise
///   maps each one afresh and page-faults it in. Measured on 2 cores: LSTM LM steps +25–35 %,
///   ResNet-20 +28 %, with the same peak memory.
pub fn configure_cpu_runtime() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // SAFETY: called at the start of `main`, before the program starts any thread, so no
        // other thread reads or writes the environment meanwhile.
        unsafe { std::env::set_var("MATMUL_NUM_THREADS", "1") }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Where a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The CPU, through ndarray.
    Ndarray,
    /// A GPU (or a software Vulkan driver), through wgpu.
    Wgpu,
}

impl BackendKind {
    /// The name the command line uses: `ndarray` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        }
    }
}

/// The CPU backend: ndarray, `f32`, with autodiff for training.
pub type NdArrayBackend = Autodiff<NdArray<f32>>;

/// The GPU backend: wgpu (Vulkan on Linux), `f32`, with autodiff for training.
///
/// Built without Burn's kernel fusion unless the `fusion` cargo feature is on.
pub type WgpuBackend = Autodiff<Wgpu<f32, i32>>;

/// A usable wgpu adapter, as reported by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgpuAdapter {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` for Mesa's lavapipe.
    pub name: String,
    /// The driver's name, e.g. `llvmpipe`.
    pub driver: String,
    /// Discrete GPU, integrated GPU, CPU (software renderer), …
    pub device_type: String,
}

impl fmt::Display for WgpuAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, driver {})",
            self.name, self.device_type, self.driver
        )
    }
}

/// Why wgpu cannot run on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgpuUnavailable;

impl fmt::Display for WgpuUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no Vulkan adapter was found for the wgpu backend. Install a Vulkan driver: on \
             Debian/Ubuntu without a GPU, `apt-get install mesa-vulkan-drivers libvulkan1` \
             (Mesa's lavapipe); with a GPU, its vendor's Vulkan driver"
        )
    }
}

impl std::error::Error for WgpuUnavailable {}

/// Every Vulkan adapter on this machine, as wgpu enumerates them, looked up once per process.
fn vulkan_adapters() -> &'static [wgpu::AdapterInfo] {
    static ADAPTERS: OnceLock<Vec<wgpu::AdapterInfo>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..Default::default()
        });
        instance
            .enumerate_adapters(wgpu::Backends::VULKAN)
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect()
    })
}

/// Looks for a Vulkan adapter (the graphics API wgpu uses on Linux) without initialising Burn's
/// runtime, so that a missing driver is an error value instead of a panic deep inside wgpu.
///
/// The answer is computed once per process.
pub fn wgpu_adapter() -> Result<WgpuAdapter, WgpuUnavailable> {
    let info = vulkan_adapters().first().ok_or(WgpuUnavailable)?;
    Ok(WgpuAdapter {
        name: info.name.clone(),
        driver: info.driver.clone(),
        device_type: format!("{:?}", info.device_type),
    })
}

/// The device to train on with wgpu: the default adapter, after checking that one exists.
pub fn wgpu_device() -> Result<WgpuDevice, WgpuUnavailable> {
    wgpu_adapter().map(|_| WgpuDevice::DefaultDevice)
}

/// Discrete GPUs with a Vulkan driver on this machine.
pub fn discrete_gpus() -> usize {
    vulkan_adapters()
        .iter()
        .filter(|info| info.device_type == wgpu::DeviceType::DiscreteGpu)
        .count()
}

/// `count` wgpu devices starting at GPU number `first`: the default adapter for a single device
/// (and for one device on a machine without enough discrete GPUs: processes of a multi-node run
/// then share it), otherwise discrete GPUs `first..first + count`.
///
/// # Errors
/// No Vulkan adapter at all, or several devices asked for and fewer discrete GPUs present.
pub fn wgpu_devices(count: usize, first: usize) -> Result<Vec<WgpuDevice>, String> {
    wgpu_adapter().map_err(|e| e.to_string())?;
    let gpus = discrete_gpus();
    if count == 1 && (first == 0 || first >= gpus) {
        return Ok(vec![WgpuDevice::DefaultDevice]);
    }
    if first + count <= gpus {
        return Ok((first..first + count)
            .map(WgpuDevice::DiscreteGpu)
            .collect());
    }
    Err(format!(
        "--devices {count} needs {count} GPUs, and this machine has {gpus} discrete GPU(s) with \
         a Vulkan driver"
    ))
}
