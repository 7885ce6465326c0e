//! A progress bar over an experiment's runs, with the elapsed time and an estimate of the rest,
//! printed as one line per event (it stays readable in logs and under CI).

use std::time::{Duration, Instant};

use crate::renderer::format_duration;

/// Progress over `total` units of work of similar cost (runs, or simulation batches).
#[derive(Debug)]
pub struct ProgressBar {
    total: usize,
    done: usize,
    /// Units done in this process (units reused from an earlier run take no time).
    timed: usize,
    started: Instant,
}

impl ProgressBar {
    /// A bar over `total` units.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            timed: 0,
            started: Instant::now(),
        }
    }

    /// Announces the unit about to start.
    pub fn start(&self, name: &str) {
        println!("{} {}: starting", self.bar(), name);
    }

    /// Counts a unit that needed no work (finished earlier).
    pub fn skip(&mut self, message: &str) {
        self.done += 1;
        println!("{} {message}", self.bar());
    }

    /// Counts a unit done in `took`, and prints the bar with the estimated time left.
    pub fn finish(&mut self, took: Duration) {
        self.done += 1;
        self.timed += 1;
        println!(
            "{} done in {} · elapsed {} · {}",
            self.bar(),
            format_duration(took),
            format_duration(self.started.elapsed()),
            match self.eta() {
                Some(eta) => format!("ETA {}", format_duration(eta)),
                None => "finished".to_string(),
            }
        );
    }

    /// The estimated time left: the mean time of the units done here, times the units left.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total.saturating_sub(self.done);
        if left == 0 || self.timed == 0 {
            return None;
        }
        Some(self.started.elapsed() / self.timed as u32 * left as u32)
    }

    /// `[#####-----] 3/10`.
    pub fn bar(&self) -> String {
        const WIDTH: usize = 20;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        format!(
            "[{}{}] {}/{}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.done,
            self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_counts_and_formats() {
        let mut bar = ProgressBar::new(4);
        assert_eq!(bar.bar(), "[--------------------] 0/4");
        assert_eq!(bar.eta(), None);
        bar.skip("reused");
        assert_eq!(bar.bar(), "[#####---------------] 1/4");
        // A skipped unit took no time: still no estimate.
        assert_eq!(bar.eta(), None);
        bar.finish(Duration::from_secs(1));
        assert!(bar.eta().is_some());
        bar.finish(Duration::ZERO);
        bar.finish(Duration::ZERO);
        assert_eq!(bar.bar(), "[####################] 4/4");
        assert_eq!(bar.eta(), None);
    }
}
