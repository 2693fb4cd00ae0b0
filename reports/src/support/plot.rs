//! Figures with `plotters`, written twice: PNG for reading, SVG for papers.
//!
//! No system font library is used (the demo must run on a fresh Debian with only Rust and
//! e2fsprogs): text on PNGs is rasterised by `ab_glyph` from DejaVu Sans, shipped in `assets/`
//! under its licence and registered once as the "sans-serif" family. SVGs name the family and
//! let the viewer draw it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Pixel size of every figure.
const SIZE: (u32, u32) = (1400, 820);

/// Registers the shipped font; idempotent. Text on a PNG panics in plotters without it.
pub fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the shipped DejaVu Sans font could not be parsed"))
    }
}

/// Distinct colours (the "tab10" palette), assigned to structures and systems in order.
pub const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    // Black, for the compact learned index: apart from every other line.
    RGBColor(0, 0, 0),
    // Dark magenta, for the compact learned index in the kernel (the BPF rows are pink).
    RGBColor(120, 0, 70),
];

/// The `i`th palette colour (cycling).
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// How axis tick values are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    /// Counts: 1, 10, 1k, 100k, 1M.
    Count,
    /// Durations given in ns: 50 ns, 2 us, 1.5 ms.
    Nanos,
    /// Plain numbers with up to 3 significant digits.
    Plain,
    /// Fractions 0..1 printed as percentages.
    Percent,
}

impl Fmt {
    /// `v` formatted for an axis.
    pub fn format(self, v: f64) -> String {
        match self {
            Fmt::Count => human(v, &[(1e9, "G"), (1e6, "M"), (1e3, "k")], ""),
            Fmt::Nanos => {
                if v >= 1e9 {
                    format!("{} s", trim(v / 1e9))
                } else if v >= 1e6 {
                    format!("{} ms", trim(v / 1e6))
                } else if v >= 1e3 {
                    format!("{} us", trim(v / 1e3))
                } else {
                    format!("{} ns", trim(v))
                }
            }
            Fmt::Plain => trim(v),
            Fmt::Percent => format!("{}%", trim(v * 100.0)),
        }
    }
}

fn human(v: f64, units: &[(f64, &str)], none: &str) -> String {
    for &(scale, unit) in units {
        if v.abs() >= scale {
            return format!("{}{unit}", trim(v / scale));
        }
    }
    format!("{}{none}", trim(v))
}

/// Up to 3 significant digits, without trailing zeros.
pub fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One line of a line chart, with an optional shaded band (e.g. median to p99).
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// Points, sorted by x.
    pub points: Vec<(f64, f64)>,
    /// `(x, low, high)` of a band drawn under the line.
    pub band: Vec<(f64, f64, f64)>,
    /// Draw a dot at every point (for sparse data).
    pub markers: bool,
    /// Connect the points (off: markers only, e.g. files of real images).
    pub connect: bool,
    /// Text next to each point (empty: none).
    pub point_labels: Vec<String>,
    /// Put the point labels below and to the left of the points instead of above right.
    pub labels_below: bool,
}

impl Line {
    /// A connected line without markers or band.
    pub fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            color,
            points,
            band: Vec::new(),
            markers: false,
            connect: true,
            point_labels: Vec::new(),
            labels_below: false,
        }
    }
}

/// A chart of lines.
#[derive(Debug, Clone)]
pub struct LinePanel {
    /// Title above the chart.
    pub title: String,
    /// X axis description, with its unit.
    pub x_desc: String,
    /// Y axis description, with its unit.
    pub y_desc: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// Tick format of x.
    pub x_fmt: Fmt,
    /// Tick format of y.
    pub y_fmt: Fmt,
    /// The lines.
    pub lines: Vec<Line>,
    /// Where the legend goes.
    pub legend: SeriesLabelPosition,
}

/// One series of a bar chart: a value per category (`None`: no bar).
#[derive(Debug, Clone)]
pub struct Bars {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// One value per category.
    pub values: Vec<Option<f64>>,
    /// Text printed at each bar's end instead of its formatted value (empty: the value).
    pub notes: Vec<String>,
}

/// Horizontal bars: categories top to bottom, grouped (side by side) or stacked.
#[derive(Debug, Clone)]
pub struct BarPanel {
    /// Title above the chart.
    pub title: String,
    /// Value axis description, with its unit.
    pub value_desc: String,
    /// Logarithmic value axis.
    pub log: bool,
    /// Tick and label format of values.
    pub fmt: Fmt,
    /// Category names, drawn top to bottom.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<Bars>,
    /// Stack the series in one bar per category instead of side by side.
    pub stacked: bool,
    /// Print each bar's value at its end.
    pub value_labels: bool,
}

/// A panel of a figure.
#[derive(Debug, Clone)]
pub enum Panel {
    /// Lines.
    Lines(LinePanel),
    /// Horizontal bars.
    Bars(BarPanel),
}

/// A figure: panels side by side, a title, and a footer naming machine, date and command.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Title at the top.
    pub title: String,
    /// Footer lines (machine, date, command), small, at the bottom.
    pub footer: Vec<String>,
    /// Panels, left to right.
    pub panels: Vec<Panel>,
}

/// Turns a plotting error (whose type depends on the backend) into an `anyhow` error.
trait PlotResult<T> {
    fn pe(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> PlotResult<T> for std::result::Result<T, E> {
    fn pe(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing: {e}"))
    }
}

impl Figure {
    /// Writes `DIR/NAME.png` and `DIR/NAME.svg`; returns their paths.
    pub fn save(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
        register_font()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let png = dir.join(format!("{name}.png"));
        let svg = dir.join(format!("{name}.svg"));
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            self.draw(&root)
                .with_context(|| format!("drawing {}", png.display()))?;
            root.present()
                .pe()
                .with_context(|| format!("writing {}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            self.draw(&root)
                .with_context(|| format!("drawing {}", svg.display()))?;
            root.present()
                .pe()
                .with_context(|| format!("writing {}", svg.display()))?;
        }
        Ok((png, svg))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).pe()?;
        let footer_h = 22 * self.footer.len() as u32 + 10;
        let (_, h) = root.dim_in_pixel();
        let (body, footer) = root.split_vertically(h.saturating_sub(footer_h));
        let body = body.titled(&self.title, (FAMILY, 30).into_font()).pe()?;
        for (i, line) in self.footer.iter().enumerate() {
            footer
                .draw_text(
                    line,
                    &TextStyle::from((FAMILY, 16).into_font()).color(&RGBColor(80, 80, 80)),
                    (12, 4 + 22 * i as i32),
                )
                .pe()?;
        }
        let areas = body.split_evenly((1, self.panels.len().max(1)));
        for (panel, area) in self.panels.iter().zip(&areas) {
            match panel {
                Panel::Lines(p) => draw_lines(area, p)?,
                Panel::Bars(p) => draw_bars(area, p)?,
            }
        }
        Ok(())
    }
}

/// Data range of a set of values, widened a little (and to whole decades on log axes) so lines
/// do not touch the frame.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        lo = 10f64.powf(lo.log10().floor());
        hi = 10f64.powf(hi.log10().ceil());
        if hi <= lo {
            hi = lo * 10.0;
        }
    } else {
        let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-9);
        lo = if lo >= 0.0 { 0.0 } else { lo - pad };
        hi += pad;
    }
    (lo, hi)
}

fn draw_lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &LinePanel) -> Result<()> {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0));
    let ys = p.lines.iter().flat_map(|l| {
        l.points
            .iter()
            .map(|q| q.1)
            .chain(l.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let (x0, x1) = range(xs, p.x_log);
    let (y0, y1) = range(ys, p.y_log);
    match (p.x_log, p.y_log) {
        (true, true) => lines_in(area, p, (x0..x1).log_scale(), (y0..y1).log_scale()),
        (true, false) => lines_in(area, p, (x0..x1).log_scale(), y0..y1),
        (false, true) => lines_in(area, p, x0..x1, (y0..y1).log_scale()),
        (false, false) => lines_in(area, p, x0..x1, y0..y1),
    }
}

fn lines_in<DB, X, Y>(area: &DrawingArea<DB, Shift>, p: &LinePanel, x: X, y: Y) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 22).into_font())
        .margin(12)
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(x, y)
        .pe()?;
    let (xf, yf) = (p.x_fmt, p.y_fmt);
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .x_label_formatter(&|v| xf.format(*v))
        .y_label_formatter(&|v| yf.format(*v))
        .label_style((FAMILY, 16).into_font())
        .axis_desc_style((FAMILY, 18).into_font())
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .pe()?;
    for l in &p.lines {
        if !l.band.is_empty() {
            let poly: Vec<(f64, f64)> = l
                .band
                .iter()
                .map(|b| (b.0, b.2))
                .chain(l.band.iter().rev().map(|b| (b.0, b.1)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    l.color.mix(0.18).filled(),
                )))
                .pe()?;
        }
        let color = l.color;
        let connected = if l.connect {
            l.points.clone()
        } else {
            Vec::new()
        };
        let series = chart
            .draw_series(LineSeries::new(connected, color.stroke_width(3)))
            .pe()?;
        if !l.label.is_empty() {
            let markers = l.markers;
            series.label(l.label.as_str()).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (24, 0)], color.stroke_width(3))
                    + Circle::new((12, 0), if markers { 5 } else { 0 }, color.filled())
            });
        }
        if l.markers {
            chart
                .draw_series(l.points.iter().map(|&q| Circle::new(q, 5, color.filled())))
                .pe()?;
        }
        let (anchor, pad) = if l.labels_below {
            (Pos::new(HPos::Right, VPos::Top), "  ")
        } else {
            (Pos::new(HPos::Left, VPos::Bottom), "  ")
        };
        let style = TextStyle::from((FAMILY, 15).into_font()).pos(anchor);
        chart
            .draw_series(l.points.iter().zip(&l.point_labels).map(|(&q, t)| {
                let text = if l.labels_below {
                    format!("{t}{pad}")
                } else {
                    format!("{pad}{t}")
                };
                Text::new(text, q, style.clone())
            }))
            .pe()?;
    }
    if p.lines.iter().any(|l| !l.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(p.legend.clone())
            .label_font((FAMILY, 16).into_font())
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .pe()?;
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &BarPanel) -> Result<()> {
    let n = p.categories.len().max(1);
    let values: Vec<f64> = if p.stacked {
        (0..n)
            .map(|i| {
                p.series
                    .iter()
                    .filter_map(|s| s.values.get(i).copied().flatten())
                    .sum()
            })
            .collect()
    } else {
        p.series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .collect()
    };
    let smallest = values
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let largest = values.iter().copied().fold(0f64, f64::max);
    let (mut v0, mut v1) = range(values.into_iter(), p.log);
    if p.log && smallest.is_finite() {
        // A bar starts at the axis; start the axis below the smallest bar so that a value of
        // exactly one decade (one file, 1 us) still has a length.
        v0 = v0.min(smallest / 2.0);
    }
    if p.value_labels && largest > 0.0 {
        // Room for the longest label after the longest bar: the plot is about the panel's
        // width less the category labels; text is about 8 px a character.
        let longest = p
            .series
            .iter()
            .flat_map(|s| {
                s.values.iter().enumerate().filter_map(|(i, v)| {
                    v.map(|v| s.notes.get(i).cloned().unwrap_or_else(|| p.fmt.format(v)))
                })
            })
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0) as f64;
        let plot_w =
            (f64::from(area.dim_in_pixel().0) - f64::from(category_width(p)) - 40.0).max(100.0);
        let share = (plot_w / (plot_w - 8.0 * (longest + 2.0)).max(plot_w * 0.3)).max(1.05);
        v1 = if p.log {
            v0 * (largest / v0).powf(share)
        } else {
            v1.max(largest * share)
        };
    }
    if p.fmt == Fmt::Percent && !p.log {
        (v0, v1) = (0.0, 1.0);
    }
    if p.log {
        bars_in(area, p, (v0..v1).log_scale(), v0)
    } else {
        bars_in(area, p, v0..v1, v0)
    }
}

fn bars_in<DB, X>(area: &DrawingArea<DB, Shift>, p: &BarPanel, x: X, base: f64) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    // The legend goes in a strip under the chart: inside, it would cover bars (stacked shares
    // fill the whole width).
    let labelled: Vec<&Bars> = p.series.iter().filter(|s| !s.label.is_empty()).collect();
    let (w, h) = area.dim_in_pixel();
    // Lay the entries out left to right, wrapping to a new row where the panel ends (text
    // width estimated at 9 px a character of the 16 px font).
    let mut placed = Vec::new();
    let (mut at, mut row) = (20i32, 0i32);
    for s in &labelled {
        let width = 24 + 9 * s.label.chars().count() as i32 + 24;
        if at + width > w as i32 && at > 20 {
            (at, row) = (20, row + 1);
        }
        placed.push((at, row, *s));
        at += width;
    }
    let strip_h = if placed.is_empty() {
        0
    } else {
        26 * (row as u32 + 1) + 6
    };
    let (area, strip) = area.split_vertically(h.saturating_sub(strip_h));
    for (x, row, s) in placed {
        let y = 26 * row + 6;
        strip
            .draw(&Rectangle::new(
                [(x, y + 1), (x + 18, y + 15)],
                s.color.filled(),
            ))
            .pe()?;
        strip
            .draw_text(
                &s.label,
                &TextStyle::from((FAMILY, 16).into_font()),
                (x + 24, y),
            )
            .pe()?;
    }
    let area = &area;
    let n = p.categories.len().max(1);
    let label_w = category_width(p);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 22).into_font())
        .margin(12)
        .x_label_area_size(55)
        .y_label_area_size(label_w)
        .build_cartesian_2d(x, 0f64..n as f64)
        .pe()?;
    // Categories sit at half-integer y values (category 0 at the top); with 2n+1 requested
    // labels the linear axis puts its ticks at every half step, and only the half-integer ones
    // get a name, so the integer ones draw the separating grid lines.
    let cats = p.categories.clone();
    let fmt = p.fmt;
    let ylab = move |v: &f64| {
        let k = v - 0.5;
        if (k - k.round()).abs() < 1e-6 && k >= 0.0 {
            let i = n - 1 - k.round() as usize;
            cats.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 1)
        .y_label_formatter(&ylab)
        .x_label_formatter(&|v| fmt.format(*v))
        .x_labels(8)
        .x_desc(p.value_desc.as_str())
        .label_style((FAMILY, 16).into_font())
        .axis_desc_style((FAMILY, 18).into_font())
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .pe()?;
    let groups = if p.stacked { 1 } else { p.series.len().max(1) };
    let band = 0.8 / groups as f64;
    let mut stack = vec![base; n];
    for (g, s) in p.series.iter().enumerate() {
        let mut rects = Vec::new();
        let mut labels = Vec::new();
        for (i, v) in s.values.iter().enumerate().take(n) {
            let Some(v) = *v else { continue };
            let top = (n - 1 - i) as f64 + 0.9;
            let (lo, hi, from) = if p.stacked {
                let from = stack[i];
                stack[i] += v;
                (top - 0.8, top, from)
            } else {
                let hi = top - band * g as f64;
                (hi - band * 0.92, hi, base)
            };
            let to = if p.stacked { stack[i] } else { v };
            if to > from {
                rects.push(Rectangle::new([(from, lo), (to, hi)], s.color.filled()));
            }
            if p.value_labels && !p.stacked {
                let text = s.notes.get(i).cloned().unwrap_or_else(|| fmt.format(v));
                labels.push((to, (lo + hi) / 2.0, text));
            }
        }
        chart.draw_series(rects).pe()?;
        let style =
            TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(
                labels
                    .into_iter()
                    .map(|(x, y, t)| Text::new(format!(" {t}"), (x, y), style.clone())),
            )
            .pe()?;
    }
    Ok(())
}

/// Pixels of the category label area of a bar chart (about 9 px a character).
fn category_width(p: &BarPanel) -> u32 {
    let chars = p
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(4) as u32;
    (chars * 9 + 20).clamp(60, 520)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_formats() {
        assert_eq!(Fmt::Count.format(100_000.0), "100k");
        assert_eq!(Fmt::Count.format(1.0), "1");
        assert_eq!(Fmt::Nanos.format(2500.0), "2.5 us");
        assert_eq!(Fmt::Nanos.format(20.0), "20 ns");
        assert_eq!(Fmt::Percent.format(0.5), "50%");
        assert_eq!(trim(0.126), "0.13");
    }

    #[test]
    fn log_ranges_are_whole_decades() {
        assert_eq!(range([3.0, 4000.0].into_iter(), true), (1.0, 10_000.0));
        assert_eq!(range(std::iter::empty(), true), (1.0, 10.0));
    }
}
