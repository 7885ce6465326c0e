//! Training and validation curves as a PNG: one panel per metric, epochs on the x axis.

use std::path::Path;

use plotters::prelude::*;

use crate::history::{History, Split};

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
    // font-kit may panic instead of failing when fontconfig is missing.
    std::panic::catch_unwind(|| draw(history, &metrics, title, path))
        .unwrap_or_else(|_| Err("the plotting library panicked (are fonts installed?)".to_string()))
}

fn draw(history: &History, metrics: &[String], title: &str, path: &Path) -> Result<(), String> {
    let columns = metrics.len().min(3);
    let rows = metrics.len().div_ceil(columns);
    let size = (420 * columns as u32, 40 + 320 * rows as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let error = |e: &dyn std::fmt::Display| format!("could not draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| error(&e))?;
    let panels = root.split_evenly((rows, columns));
    let last_epoch = history.epochs.iter().map(|r| r.epoch).max().unwrap_or(1);
    for (panel, metric) in panels.iter().zip(metrics) {
        let series = |split: Split| -> Vec<(f64, f64)> {
            history
                .epochs
                .iter()
                .filter_map(|record| {
                    let value = record.get(split, metric)?;
                    value.is_finite().then_some((record.epoch as f64, value))
                })
                .collect()
        };
        let (train, valid) = (series(Split::Train), series(Split::Valid));
        let values = train.iter().chain(&valid).map(|&(_, y)| y);
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        if !low.is_finite() {
            continue;
        }
        let margin = ((high - low) * 0.08).max(high.abs() * 1e-3).max(1e-9);
        let mut chart = ChartBuilder::on(panel)
            .caption(metric, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5..last_epoch as f64 + 0.5, low - margin..high + margin)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(last_epoch.min(10))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| error(&e))?;
        for (points, color, label) in [(train, BLUE, "train"), (valid, RED, "valid")] {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
                .map_err(|e| error(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| error(&e))?;
    }
    root.present().map_err(|e| error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EpochRecord;

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
                .insert((Split::Train, "Loss".into()), 1.0 / epoch as f64);
            record
                .values
                .insert((Split::Valid, "Loss".into()), 1.2 / epoch as f64);
            record
                .values
                .insert((Split::Valid, "Accuracy".into()), 30.0 * epoch as f64);
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
