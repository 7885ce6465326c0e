//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::backend::wgpu::WgpuDevice;

/// The wgpu device, or `None` (with a printed notice) when this machine has no Vulkan adapter.
///
/// With `RADAM_REQUIRE_WGPU=1` (set by `.ci/run`) a missing adapter fails the test instead, so
/// CI can never silently skip the GPU path.
pub fn wgpu_device_or_skip(test: &str) -> Option<WgpuDevice> {
    match radam_train::backend::wgpu_device() {
        Ok(device) => Some(device),
        Err(error) if std::env::var("RADAM_REQUIRE_WGPU").is_ok_and(|value| value == "1") => {
            panic!("RADAM_REQUIRE_WGPU=1, but {error}")
        }
        Err(error) => {
            eprintln!(
                "NOTICE: skipping the wgpu part of `{test}`: {error}. Then run the tests with \
                 RADAM_REQUIRE_WGPU=1 to make a missing adapter a failure."
            );
            None
        }
    }
}

/// A fresh temporary directory, removed when the value is dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("radam-test-")
        .tempdir()
        .expect("a temporary directory")
}
