//! Shared by the crate's tests: its unit tests include this file too (`#[path]`), so the devices
//! they run on are listed one way everywhere.

use burn::tensor::Device;

/// Burn 0.22's two CPU backends: flex, and ndarray (deprecated in 0.22, still what many users
/// run). Flex alone under `--cfg burn_023` (`tools/burn-023-check`): Burn 0.23 has no ndarray.
#[allow(deprecated)]
pub fn cpu_devices() -> Vec<Device> {
    #[cfg(not(burn_023))]
    return vec![Device::flex(), Device::ndarray()];
    #[cfg(burn_023)]
    vec![Device::flex()]
}

/// [`cpu_devices`], then wgpu where [`wgpu_device`] finds one.
pub fn devices() -> Vec<Device> {
    let mut devices = cpu_devices();
    devices.extend(wgpu_device());
    devices
}

/// A wgpu device with the crate's `wgpu` feature, once per process (wgpu's runtime is set up
/// once); `None` (with a note) where there is no adapter, a failure with `RADAM_REQUIRE_WGPU=1`
/// (as in CI, on lavapipe).
pub fn wgpu_device() -> Option<Device> {
    #[cfg(feature = "wgpu")]
    {
        static WGPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
        let device = WGPU.get_or_init(|| {
            Device::wgpu_options()
                .init()
                .map_err(|error| error.to_string())
        });
        match device {
            Ok(device) => Some(device.clone()),
            Err(error) if std::env::var("RADAM_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
                panic!("RADAM_REQUIRE_WGPU=1, but wgpu has no adapter: {error}")
            }
            Err(error) => {
                eprintln!("wgpu: no adapter ({error}); the tests on it are skipped");
                None
            }
        }
    }
    #[cfg(not(feature = "wgpu"))]
    None
}
