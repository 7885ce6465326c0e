//! Training and validation curves as a PNG: one panel per metric, epochs on the x axis.

use std::path::Path;

use crate::figure::{Figure, Panel, Series};
use crate::harness::history::{History, Phase};

/// Draws `history` into the PNG file `path` (`title` on top).
///
/// # Errors
/// If there is nothing to draw, or the image cannot be drawn or written — for example when the
/// system has no fonts (install `fonts-dejavu-core`; the labels need one).
pub fn plot_history(history: &History, title: &str, path: &Path) -> Result<(), String> {
    let metrics = history.metrics();
    if metrics.is_empty() {
        return Err("no metric was recorded".to_string());
    }
    let series = |split: Phase, metric: &str| -> Vec<(f64, f64)> {
        history
            .epochs
            .iter()
            .filter_map(|record| Some((record.epoch as f64, record.get(split, metric)?)))
            .collect()
    };
    let panels = metrics
        .iter()
        .map(|metric| {
            Panel::new(metric.as_str(), "epoch", "")
                .with(Series::new("train", series(Phase::Train, metric)))
                .with(Series::new("valid", series(Phase::Valid, metric)))
        })
        .collect();
    Figure::new(title, panels).save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::EpochRecord;

    #[test]
    fn writes_a_png_with_a_panel_per_metric() {
        let mut history = History::default();
        for epoch in 1..=3 {
            let mut record = EpochRecord {
                epoch,
                ..Default::default()
            };
            record
                .values
                .insert((Phase::Train, "Loss".into()), 1.0 / epoch as f64);
            record
                .values
                .insert((Phase::Valid, "Loss".into()), 1.2 / epoch as f64);
            record
                .values
                .insert((Phase::Valid, "Accuracy".into()), 30.0 * epoch as f64);
            history.epochs.push(record);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        plot_history(&history, "test", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(plot_history(&History::default(), "empty", &path).is_err());
    }
}
