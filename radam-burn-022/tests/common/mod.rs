//! Shared by the crate's tests: its unit tests include this file too (`#[path]`), so the wgpu
//! device is found one way everywhere.

use burn::tensor::Device;

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
