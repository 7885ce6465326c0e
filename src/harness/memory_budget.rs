//! Whether a run fits in memory, checked before anything large is allocated: an estimate of the
//! bytes that the size flags imply against the memory the machine has available, so that a flag
//! too large ends in an `error:` line naming it instead of an abort on a failed allocation.
//!
//! The estimates are rough on purpose (within a small factor): they only have to tell a run
//! that fits from one that is orders of magnitude too large.

use super::error::HarnessError;

/// The memory this machine has available (`MemAvailable`), where it can tell.
pub fn available_memory() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses `bytes` of memory for `what` (naming the flags that set it, e.g. `--images
/// 100000000000`) when they exceed the `available` memory (where it is known).
///
/// # Errors
/// `<what> would need about X GB of memory, more than the Y GB available`.
pub fn check_fits(what: &str, bytes: u128, available: Option<u128>) -> Result<(), HarnessError> {
    match available {
        Some(available) if bytes > available => Err(HarnessError::Invalid(format!(
            "{what} would need about {} of memory, more than the {} available",
            gigabytes(bytes),
            gigabytes(available)
        ))),
        _ => Ok(()),
    }
}

/// `bytes` in gigabytes, one decimal.
fn gigabytes(bytes: u128) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Bytes to train a model of `parameters` with an adaptive optimizer: the weights, their
/// gradients, the two moments, and a serialised copy while a checkpoint is written (f32).
pub fn training_bytes(parameters: u128) -> u128 {
    parameters * 4 * 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_beyond_the_available_memory_is_refused_naming_it() {
        assert!(check_fits("--images 10", 100, Some(100)).is_ok());
        assert!(check_fits("--images 10", 100, None).is_ok());
        assert_eq!(
            check_fits(
                "--images 100000000000",
                800_000_000_000,
                Some(24_000_000_000)
            )
            .unwrap_err()
            .to_string(),
            "--images 100000000000 would need about 800.0 GB of memory, more than the 24.0 GB \
             available"
        );
        assert_eq!(training_bytes(1_000_000), 20_000_000);
    }
}
