//! Line-chart figures as PNG files: panels of named series, optionally on log axes. The
//! experiments draw their figures with it.

use std::path::Path;

use plotters::prelude::*;

/// One line of a [`Panel`].
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points (and non-positive ones on a log axis)
    /// are left out.
    pub points: Vec<(f64, f64)>,
    /// `(x, low, high)`: a shaded band around the line (e.g. ± one standard deviation over
    /// seeds); empty for none.
    pub band: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A series named `name`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            band: Vec::new(),
        }
    }

    /// The same series with a shaded band of `(x, low, high)` around its line.
    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = band;
        self
    }
}

/// A series reduced to what can be drawn on a panel's axes.
struct Drawable {
    name: String,
    points: Vec<(f64, f64)>,
    /// The band's outline: the upper edge left to right, then the lower edge right to left.
    band: Vec<(f64, f64)>,
}

/// One chart of a [`Figure`].
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// The caption above the chart.
    pub title: String,
    /// The x-axis label.
    pub x_label: String,
    /// The y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl Panel {
    /// A panel with linear axes and no series yet.
    pub fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            ..Self::default()
        }
    }

    /// The same panel with a logarithmic x axis.
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// The same panel with a logarithmic y axis.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    fn drawable(&self) -> Vec<Drawable> {
        let fits = |x: f64, y: f64| {
            x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
        };
        self.series
            .iter()
            .map(|series| {
                let points = series
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| fits(x, y))
                    .collect();
                let band: Vec<(f64, f64, f64)> = series
                    .band
                    .iter()
                    .copied()
                    .filter(|&(x, low, high)| fits(x, low) && fits(x, high))
                    .collect();
                let outline = band
                    .iter()
                    .map(|&(x, _, high)| (x, high))
                    .chain(band.iter().rev().map(|&(x, low, _)| (x, low)))
                    .collect();
                Drawable {
                    name: series.name.clone(),
                    points,
                    band: outline,
                }
            })
            .collect()
    }
}

/// A titled grid of panels, saved as one PNG.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The title on top.
    pub title: String,
    /// The charts, filled row by row, at most `columns` per row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
}

impl Figure {
    /// A figure with up to three panels per row.
    pub fn new(title: impl Into<String>, panels: Vec<Panel>) -> Self {
        Self {
            title: title.into(),
            panels,
            columns: 3,
        }
    }

    /// Draws the figure into the PNG file `path`.
    ///
    /// # Errors
    /// If no panel has a point to draw, or the image cannot be drawn or written — for example
    /// when the system has no fonts (install `fonts-dejavu-core`; the labels need one).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if self.panels.iter().all(|panel| {
            panel
                .drawable()
                .iter()
                .all(|series| series.points.is_empty())
        }) {
            return Err(format!("{}: nothing to draw", self.title));
        }
        // font-kit may panic instead of failing when fontconfig is missing.
        std::panic::catch_unwind(|| self.draw(path)).unwrap_or_else(|_| {
            Err("the plotting library panicked (are fonts installed?)".to_string())
        })
    }

    fn draw(&self, path: &Path) -> Result<(), String> {
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(columns).max(1);
        let size = (460 * columns as u32, 40 + 340 * rows as u32);
        let root = BitMapBackend::new(path, size).into_drawing_area();
        let error = |e: &dyn std::fmt::Display| format!("could not draw {}: {e}", path.display());
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let root = root
            .titled(&self.title, ("sans-serif", 22))
            .map_err(|e| error(&e))?;
        for (area, panel) in root.split_evenly((rows, columns)).iter().zip(&self.panels) {
            draw_panel(area, panel).map_err(|e| error(&e))?;
        }
        root.present().map_err(|e| error(&e))
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return None;
    }
    Some(if log {
        let (low, high) = if low == high {
            (low / 2.0, high * 2.0)
        } else {
            (low, high)
        };
        (low / 1.2, high * 1.2)
    } else {
        let margin = ((high - low) * 0.06).max(high.abs() * 1e-3).max(1e-12);
        (low - margin, high + margin)
    })
}

/// An axis label: short scientific notation for tiny and huge values, else at most three
/// decimals without trailing zeros.
fn tick(value: &f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-2..1e5).contains(&magnitude) {
        format!("{value:.0e}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

fn draw_panel(area: &Area<'_>, panel: &Panel) -> Result<(), String> {
    let series = panel.drawable();
    let points = || {
        series
            .iter()
            .flat_map(|series| series.points.iter().chain(&series.band))
    };
    // A log axis over less than a decade would have no labelled tick: draw it linear.
    let spans_a_decade = |values: &mut dyn Iterator<Item = f64>| {
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        high >= 10.0 * low
    };
    let log_x = panel.log_x && spans_a_decade(&mut points().map(|p| p.0));
    let log_y = panel.log_y && spans_a_decade(&mut points().map(|p| p.1));
    let Some((x_low, x_high)) = range(points().map(|p| p.0), log_x) else {
        return Ok(());
    };
    let Some((y_low, y_high)) = range(points().map(|p| p.1), log_y) else {
        return Ok(());
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64);
    // Four axis combinations are four chart types in plotters.
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .x_labels(8)
                .y_labels(8)
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .draw()
                .map_err(text)?;
            for (index, Drawable { name, points, band }) in series.iter().enumerate() {
                if points.is_empty() {
                    continue;
                }
                let color = Palette99::pick(index).to_rgba();
                if !band.is_empty() {
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            band.clone(),
                            color.mix(0.18).filled(),
                        )))
                        .map_err(text)?;
                }
                chart
                    .draw_series(
                        // Markers where the points are few (per-epoch curves), else a line.
                        LineSeries::new(points.clone(), color.stroke_width(2))
                            .point_size(if points.len() <= 30 { 3 } else { 0 }),
                    )
                    .map_err(text)?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(text)?;
        }};
    }
    match (log_x, log_y) {
        (false, false) => finish!(
            builder
                .build_cartesian_2d(x_low..x_high, y_low..y_high)
                .map_err(text)?
        ),
        (true, false) => {
            finish!(
                builder
                    .build_cartesian_2d((x_low..x_high).log_scale(), y_low..y_high)
                    .map_err(text)?
            )
        }
        (false, true) => {
            finish!(
                builder
                    .build_cartesian_2d(x_low..x_high, (y_low..y_high).log_scale())
                    .map_err(text)?
            )
        }
        (true, true) => finish!(
            builder
                .build_cartesian_2d((x_low..x_high).log_scale(), (y_low..y_high).log_scale())
                .map_err(text)?
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(&9.999999999999999e-5), "1e-4");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&100.0), "100");
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&1e6), "1e6");
    }

    #[test]
    fn draws_linear_and_log_panels_and_refuses_an_empty_figure() {
        let curve: Vec<(f64, f64)> = (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect();
        let figure = Figure::new(
            "test",
            vec![
                Panel::new("linear", "x", "y").with(Series::new("a", curve.clone())),
                Panel::new("log-log", "x", "y")
                    .log_x()
                    .log_y()
                    .with(Series::new("a", curve.clone()))
                    // Non-positive points cannot sit on a log axis: left out, not an error.
                    .with(Series::new("b", vec![(0.0, 1.0), (2.0, -1.0), (3.0, 0.5)])),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure.png");
        figure.save(&path).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");

        // A band widens the y range it is drawn on and is outlined upper edge first.
        let band: Vec<(f64, f64, f64)> =
            vec![(1.0, 0.5, 2.0), (2.0, 0.4, 1.5), (3.0, f64::NAN, 1.0)];
        let panel = Panel::new("band", "x", "y")
            .with(Series::new("a", vec![(1.0, 1.0), (2.0, 1.0)]).with_band(band));
        let drawable = panel.drawable();
        assert_eq!(
            drawable[0].band,
            [(1.0, 2.0), (2.0, 1.5), (2.0, 0.4), (1.0, 0.5)],
            "the NaN point is left out"
        );
        Figure::new("band", vec![panel]).save(&path).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");

        let empty = Figure::new("empty", vec![Panel::new("p", "x", "y")]);
        assert_eq!(
            empty.save(&path).unwrap_err(),
            "empty: nothing to draw".to_string()
        );
    }
}
