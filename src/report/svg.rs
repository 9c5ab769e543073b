//! Inline SVG plots over run time: lines, dots, bands and labelled vertical markers.

use std::fmt::Write;

use super::xml::escape;

/// Plot width in pixels.
const WIDTH: f64 = 1000.0;
/// Space for the y axis labels.
const LEFT: f64 = 70.0;
/// Space right of the plot area.
const RIGHT: f64 = 20.0;
/// Space for title and legend.
const TOP: f64 = 46.0;
/// Space for the x axis labels.
const BOTTOM: f64 = 40.0;
/// Lines with more than twice this many points are reduced to the lowest and highest point of
/// each of this many time buckets (a 48 h soak has 172,800 points a line).
const MAX_LINE_POINTS: usize = 1000;
/// At most this many marker labels are drawn (every marker keeps its line and tooltip).
const MAX_MARKER_LABELS: usize = 6;

/// A line series; `None` points leave a gap.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend name.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) in data units.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A point with a tooltip; drawn as a circle, or as a cross when `cross`.
#[derive(Debug, Clone)]
pub struct Dot {
    /// x in data units.
    pub x: f64,
    /// y in data units.
    pub y: f64,
    /// CSS colour.
    pub color: &'static str,
    /// Tooltip.
    pub title: String,
    /// Draw a cross (failures) instead of a circle.
    pub cross: bool,
}

/// A filled rectangle in data units, with a tooltip.
#[derive(Debug, Clone)]
pub struct Band {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y0: f64,
    /// Top edge.
    pub y1: f64,
    /// CSS colour.
    pub color: &'static str,
    /// Tooltip.
    pub title: String,
}

/// A vertical line across the plot with a visible label and a tooltip.
#[derive(Debug, Clone)]
pub struct Marker {
    /// x in data units.
    pub x: f64,
    /// Short visible label.
    pub label: String,
    /// Tooltip (the full signature).
    pub title: String,
    /// CSS colour.
    pub color: &'static str,
}

/// One plot against run-elapsed seconds.
#[derive(Debug, Clone, Default)]
pub struct Plot {
    /// Identifier, written as `data-plot` (tests and stylesheets find plots by it).
    pub id: &'static str,
    /// Title drawn in the plot.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Height in pixels.
    pub height: f64,
    /// The run's length in seconds (the x axis spans 0..x_max).
    pub x_max: f64,
    /// The y axis top; computed from the data when `None`.
    pub y_max: Option<f64>,
    /// Named y positions instead of numeric ticks (for categorical rows).
    pub y_categories: Vec<(f64, String)>,
    /// Line series.
    pub lines: Vec<Line>,
    /// Points.
    pub dots: Vec<Dot>,
    /// Rectangles (drawn below everything else).
    pub bands: Vec<Band>,
    /// Vertical markers (drawn on top).
    pub markers: Vec<Marker>,
    /// Extra legend entries (colour, text) for dots and bands.
    pub legend: Vec<(&'static str, String)>,
}

/// Maps data coordinates to pixels.
struct Frame {
    x_max: f64,
    y_max: f64,
    height: f64,
}

impl Frame {
    fn x(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, y: f64) -> f64 {
        let bottom = self.height - BOTTOM;
        bottom - (y / self.y_max).clamp(0.0, 1.0) * (bottom - TOP)
    }
}

impl Plot {
    /// Render as an `<svg>` element (XML-compatible markup).
    pub fn render(&self) -> String {
        let height = if self.height > 0.0 {
            self.height
        } else {
            260.0
        };
        let x_max = if self.x_max > 0.0 { self.x_max } else { 1.0 };
        let y_max = self
            .y_max
            .unwrap_or_else(|| nice_ceiling(self.data_y_max()));
        let f = Frame {
            x_max,
            y_max,
            height,
        };
        let mut s = String::new();
        // `write!` into a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}">"#,
            self.id,
            escape(&self.title)
        );
        let _ = writeln!(s, "<title>{}</title>", escape(&self.title));
        let _ = writeln!(
            s,
            r#"<text class="plot-title" x="{LEFT}" y="16">{}</text>"#,
            escape(&self.title)
        );
        self.render_axes(&mut s, &f);
        for b in &self.bands {
            let (x0, x1) = (f.x(b.x0), f.x(b.x1));
            let (ya, yb) = (f.y(b.y1), f.y(b.y0));
            let _ = writeln!(
                s,
                r#"<rect class="band" x="{x0:.1}" y="{ya:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                (x1 - x0).max(0.5),
                (yb - ya).max(0.5),
                b.color,
                escape(&b.title)
            );
        }
        for line in &self.lines {
            render_line(&mut s, &f, line);
        }
        for d in &self.dots {
            let (x, y) = (f.x(d.x), f.y(d.y));
            if d.cross {
                let _ = writeln!(
                    s,
                    r#"<path class="dot fail" d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="{}" stroke-width="2.5"><title>{}</title></path>"#,
                    x - 5.0,
                    y - 5.0,
                    x + 5.0,
                    y + 5.0,
                    x - 5.0,
                    y + 5.0,
                    x + 5.0,
                    y - 5.0,
                    d.color,
                    escape(&d.title)
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="4" fill="{}"><title>{}</title></circle>"#,
                    d.color,
                    escape(&d.title)
                );
            }
        }
        for (i, m) in self.markers.iter().enumerate() {
            let x = f.x(m.x);
            let _ = writeln!(
                s,
                r#"<g class="marker"><title>{}</title>"#,
                escape(&m.title)
            );
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="2" stroke-dasharray="6,3"/>"#,
                height - BOTTOM,
                m.color
            );
            if i < MAX_MARKER_LABELS {
                // Labels step down so that neighbouring markers stay readable; near the right
                // edge they go to the left of their line.
                let y = TOP + 14.0 + 14.0 * i as f64;
                let (tx, anchor) = if x > WIDTH * 0.7 {
                    (x - 4.0, "end")
                } else {
                    (x + 4.0, "start")
                };
                let _ = writeln!(
                    s,
                    r#"<text class="marker-label" x="{tx:.1}" y="{y:.1}" text-anchor="{anchor}" fill="{}">{}</text>"#,
                    m.color,
                    escape(&m.label)
                );
            }
            s.push_str("</g>\n");
        }
        self.render_legend(&mut s);
        s.push_str("</svg>\n");
        s
    }

    fn data_y_max(&self) -> f64 {
        let lines = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1));
        let dots = self.dots.iter().map(|d| d.y);
        lines
            .chain(dots)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    }

    fn render_axes(&self, s: &mut String, f: &Frame) {
        let bottom = f.height - BOTTOM;
        let _ = writeln!(
            s,
            r##"<rect class="frame" x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#fff" stroke="#999"/>"##,
            WIDTH - LEFT - RIGHT,
            bottom - TOP
        );
        let step = time_step(f.x_max);
        let mut t = 0.0;
        while t <= f.x_max + 1e-9 {
            let x = f.x(t);
            let _ = writeln!(
                s,
                r##"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#eee"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                bottom + 15.0,
                time_label(t, f.x_max)
            );
            t += step;
        }
        let _ = writeln!(
            s,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            f.height - 6.0,
            time_axis_label(f.x_max)
        );
        let ticks: Vec<(f64, String)> = if self.y_categories.is_empty() {
            let step = nice_step(f.y_max / 5.0);
            (0..=((f.y_max / step).round() as usize))
                .map(|i| i as f64 * step)
                .map(|v| (v, number_label(v)))
                .collect()
        } else {
            self.y_categories.clone()
        };
        for (v, label) in ticks {
            let y = f.y(v);
            let _ = writeln!(
                s,
                r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 5.0,
                y + 4.0,
                escape(&label)
            );
        }
        let _ = writeln!(
            s,
            r#"<text class="axis-label" x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            (TOP + bottom) / 2.0,
            (TOP + bottom) / 2.0,
            escape(&self.y_label)
        );
    }

    fn render_legend(&self, s: &mut String) {
        let entries = self
            .lines
            .iter()
            .map(|l| (l.color, l.name.clone()))
            .chain(self.legend.iter().cloned());
        let mut x = WIDTH - RIGHT;
        // Right-aligned, laid out from the right edge leftwards.
        for (color, text) in entries.collect::<Vec<_>>().into_iter().rev() {
            let w = 22.0 + 7.0 * text.chars().count() as f64;
            x -= w;
            let _ = writeln!(
                s,
                r#"<g class="legend"><rect x="{x:.1}" y="26" width="12" height="12" fill="{color}"/><text x="{:.1}" y="36">{}</text></g>"#,
                x + 16.0,
                escape(&text)
            );
        }
    }
}

fn render_line(s: &mut String, f: &Frame, line: &Line) {
    let points = downsample(&line.points, MAX_LINE_POINTS);
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, s: &mut String| {
        if !segment.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                escape(&line.name),
                segment.join(" "),
                line.color
            );
            segment.clear();
        }
    };
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => segment.push(format!("{:.1},{:.1}", f.x(x), f.y(y))),
            _ => flush(&mut segment, s),
        }
    }
    flush(&mut segment, s);
}

/// Reduce a line to at most `2 * max` points that keep its shape: consecutive points are
/// grouped into at most `max` buckets, and each bucket becomes its lowest and its highest point
/// (in time order), so a one-second dip or spike shows at any run length. A bucket without
/// values is a gap.
pub fn downsample(points: &[(f64, Option<f64>)], max: usize) -> Vec<(f64, Option<f64>)> {
    if points.len() <= 2 * max || max == 0 {
        return points.to_vec();
    }
    let per_bucket = points.len().div_ceil(max);
    let mut out = Vec::with_capacity(2 * max);
    for chunk in points.chunks(per_bucket) {
        let valued = chunk
            .iter()
            .filter_map(|&(x, y)| y.filter(|v| v.is_finite()).map(|v| (x, v)));
        let lowest = valued.clone().min_by(|a, b| a.1.total_cmp(&b.1));
        let highest = valued.max_by(|a, b| a.1.total_cmp(&b.1));
        match (lowest, highest) {
            (Some(lo), Some(hi)) if lo.0 == hi.0 => out.push((lo.0, Some(lo.1))),
            (Some(lo), Some(hi)) => {
                let (first, second) = if lo.0 < hi.0 { (lo, hi) } else { (hi, lo) };
                out.push((first.0, Some(first.1)));
                out.push((second.0, Some(second.1)));
            }
            _ => {
                let x = chunk.iter().map(|p| p.0).sum::<f64>() / chunk.len() as f64;
                out.push((x, None));
            }
        }
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A round number above `max` for the y axis.
pub fn nice_ceiling(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let step = nice_step(max / 5.0);
    (max / step).ceil().max(1.0) * step
}

/// A time tick step giving at most about 12 ticks.
fn time_step(x_max: f64) -> f64 {
    const STEPS: [f64; 19] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0, 172800.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| x_max / s <= 12.0)
        .unwrap_or(x_max / 12.0)
}

fn time_label(t: f64, x_max: f64) -> String {
    let secs = t.round() as u64;
    if x_max <= 300.0 {
        format!("{secs}")
    } else if x_max <= 7200.0 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 3600, (secs % 3600) / 60)
    }
}

fn time_axis_label(x_max: f64) -> &'static str {
    if x_max <= 300.0 {
        "run time (s)"
    } else if x_max <= 7200.0 {
        "run time (m:ss)"
    } else {
        "run time (h:mm)"
    }
}

fn number_label(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ceilings_are_round() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(180.0), 200.0);
        assert_eq!(nice_ceiling(940.0), 1000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(time_step(60.0), 5.0);
        assert_eq!(time_step(172_800.0), 21_600.0);
        assert_eq!(number_label(0.25), "0.25");
        assert_eq!(number_label(200.0), "200");
    }

    #[test]
    fn downsampling_keeps_lows_highs_and_gaps() {
        let points: Vec<_> = (0..20)
            .map(|i| (i as f64, (i < 12).then_some(((i * 7) % 5) as f64)))
            .collect();
        let d = downsample(&points, 5);
        // Bucket 0 holds x 0..4 with values 0, 2, 4, 1: its low (0 at 0) and high (4 at 2).
        assert_eq!(d[0], (0.0, Some(0.0)));
        assert_eq!(d[1], (2.0, Some(4.0)));
        // Buckets 3 and 4 (x 12..20) have no values: one gap each.
        assert_eq!(&d[d.len() - 2..], &[(13.5, None), (17.5, None)]);
        assert!(d.len() <= 10);
        // Short lines are left alone.
        assert_eq!(downsample(&points, 10), points);
    }

    #[test]
    fn a_one_second_dip_in_48_hours_survives_downsampling() {
        let points: Vec<_> = (0..172_800u32)
            .map(|i| (f64::from(i), Some(if i == 100_000 { 0.0 } else { 190e6 })))
            .collect();
        let d = downsample(&points, MAX_LINE_POINTS);
        assert!(d.len() <= 2 * MAX_LINE_POINTS, "{}", d.len());
        assert!(d.contains(&(100_000.0, Some(0.0))), "the dip is kept");
        assert!(d.iter().all(|p| p.1.is_some()));
    }

    #[test]
    fn a_plot_has_its_lines_dots_and_markers() {
        let plot = Plot {
            id: "t",
            title: "T <&>".into(),
            y_label: "y".into(),
            x_max: 60.0,
            lines: vec![Line {
                name: "a".into(),
                color: "blue",
                points: vec![(1.0, Some(2.0)), (2.0, None), (3.0, Some(1.0))],
            }],
            dots: vec![Dot {
                x: 5.0,
                y: 1.0,
                color: "red",
                title: "d".into(),
                cross: true,
            }],
            markers: vec![Marker {
                x: 30.0,
                label: "stall".into(),
                title: "sig".into(),
                color: "red",
            }],
            ..Plot::default()
        };
        let svg = plot.render();
        assert_eq!(svg.matches("<polyline").count(), 2, "a gap splits the line");
        assert!(svg.contains("T &lt;&amp;&gt;"));
        assert!(svg.contains("<title>sig</title>"));
        assert!(svg.contains(">stall</text>"));
    }
}
