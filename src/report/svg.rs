//! SVG charts for report.html: linear and log scales, "nice" 1-2-5 ticks, a "nines" axis
//! for latency percentiles, line paths decimated to a bounded number of points (min and
//! max kept per pixel bucket, so spikes survive), multi-series line charts, lane charts
//! (one lane per worker), horizontal bars and sparklines.
//!
//! The output is inline SVG for an HTML page under a strict CSP: colours are presentation
//! attributes (`fill`, `stroke`), never `style=`; tooltips are `<title>` elements; every
//! piece of text is escaped. No `xmlns` is written (inline SVG in HTML needs none), so the
//! page names no URL at all.

use std::fmt::Write as _;

/// Colours of the series, in order (colour-blind friendly, restrained).
pub const PALETTE: [&str; 6] = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2"];
pub const GREEN: &str = "#16a34a";
pub const RED: &str = "#dc2626";
pub const AMBER: &str = "#d97706";
pub const GREY: &str = "#94a3b8";
const INK: &str = "#334155";
const MUTED: &str = "#64748b";
const GRID: &str = "#e2e8f0";

/// Pixel buckets a line is decimated to: at most two points each (about 600 drawn).
pub const MAX_BUCKETS: usize = 300;

/// `s` escaped for SVG/HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The 1-2-5 step that cuts `span` into at most about `max_ticks` intervals.
pub fn nice_step(span: f64, max_ticks: usize) -> f64 {
    let raw = span.abs() / max_ticks.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Ticks at multiples of a 1-2-5 step covering `[lo, hi]` (the first at or below `lo`, the
/// last at or above `hi`). An empty or degenerate range is widened around its value.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.5 };
        (lo, hi) = if lo >= 0.0 { ((lo - pad).max(0.0), hi + pad) } else { (lo - pad, hi + pad) };
    }
    let step = nice_step(hi - lo, max_ticks);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            // Round off the float noise of i * step (0.30000000000000004).
            let digits = (-step.log10().floor()).max(0.0) as i32 + 1;
            let p = 10f64.powi(digits);
            let v = (v * p).round() / p;
            if v == 0.0 {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// Powers of ten covering `[lo, hi]` (both positive), at least two.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
    let hi = if hi.is_finite() && hi > lo { hi } else { lo * 10.0 };
    let a = (lo.log10() + 1e-9).floor() as i32;
    let b = ((hi.log10() - 1e-9).ceil() as i32).max(a + 1);
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

/// The label of a point of the nines axis, `x = 1 / (1 - q)`: `1` -> `0%`, `10` -> `90%`,
/// `1000` -> `99.9%`.
pub fn nines_label(x: f64) -> String {
    if !x.is_finite() || x <= 1.0 {
        return "0%".into();
    }
    let q = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{q:.decimals$}%")
}

/// Maps a domain onto pixels, linearly or logarithmically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
    pub log: bool,
}

impl Scale {
    pub fn linear(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        Scale { d0, d1, r0, r1, log: false }
    }

    /// A log10 scale; non-positive bounds are lifted to a small positive value.
    pub fn log(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d0 = if d0 > 0.0 { d0 } else { 1e-3 };
        let d1 = if d1 > d0 { d1 } else { d0 * 10.0 };
        Scale { d0, d1, r0, r1, log: true }
    }

    /// The pixel of `v` (values outside the domain map outside the range; a log scale
    /// clamps non-positive values to its lower bound).
    pub fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            let v = if v > 0.0 { v } else { self.d0 };
            (v.log10() - self.d0.log10()) / (self.d1.log10() - self.d0.log10())
        } else if self.d1 != self.d0 {
            (v - self.d0) / (self.d1 - self.d0)
        } else {
            0.5
        };
        self.r0 + t * (self.r1 - self.r0)
    }
}

/// Thins `points` (sorted by x) to at most two per bucket of x (the lowest and highest y,
/// in x order), plus the first and last point, when there are more than `2 * buckets`.
/// Points with a non-finite coordinate are dropped.
pub fn decimate(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if buckets == 0 || pts.len() <= 2 * buckets {
        return pts;
    }
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
    let span = x1 - x0;
    let bucket_of = |i: usize, x: f64| -> usize {
        let t = if span > 0.0 { (x - x0) / span } else { i as f64 / pts.len() as f64 };
        ((t * buckets as f64) as usize).min(buckets - 1)
    };
    let mut out = Vec::with_capacity(2 * buckets + 2);
    out.push(pts[0]);
    let flush = |lo: usize, hi: usize, out: &mut Vec<(f64, f64)>| {
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        for i in [a, b] {
            if out.last() != Some(&pts[i]) {
                out.push(pts[i]);
            }
        }
    };
    let (mut cur, mut lo, mut hi) = (bucket_of(0, pts[0].0), 0, 0);
    for (i, p) in pts.iter().enumerate().skip(1) {
        let b = bucket_of(i, p.0);
        if b != cur {
            flush(lo, hi, &mut out);
            (cur, lo, hi) = (b, i, i);
        } else {
            if p.1 < pts[lo].1 {
                lo = i;
            }
            if p.1 > pts[hi].1 {
                hi = i;
            }
        }
    }
    flush(lo, hi, &mut out);
    let last = pts[pts.len() - 1];
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// `M x y L x y ...` through the points, one decimal.
pub fn path_d(points: &[(f64, f64)], sx: &Scale, sy: &Scale) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (x, y)) in points.iter().enumerate() {
        let _ = write!(d, "{}{:.1} {:.1}", if i == 0 { "M" } else { " L" }, sx.map(*x), sy.map(*y));
    }
    d
}

/// How an axis maps its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisKind {
    Linear,
    Log,
    /// Percentiles as `x = 1 / (1 - q)` on a log scale, labelled 0%, 90%, 99%, 99.9%...
    Nines,
}

/// One axis: its title (with the unit), kind, tick label format and optional bounds
/// (`zero`: the linear domain starts at 0).
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub kind: AxisKind,
    pub fmt: fn(f64) -> String,
    pub zero: bool,
}

impl Axis {
    pub fn new(label: &str, kind: AxisKind, fmt: fn(f64) -> String) -> Axis {
        Axis { label: label.to_string(), kind, fmt, zero: kind == AxisKind::Linear }
    }

    /// The scale over `[lo, hi]` of the data, onto `[r0, r1]`, and its ticks.
    fn scale(&self, lo: f64, hi: f64, r0: f64, r1: f64, max_ticks: usize) -> (Scale, Vec<f64>) {
        match self.kind {
            AxisKind::Linear => {
                let lo = if self.zero { lo.min(0.0) } else { lo };
                let t = nice_ticks(lo, hi, max_ticks);
                (Scale::linear(t[0], t[t.len() - 1], r0, r1), t)
            }
            AxisKind::Log | AxisKind::Nines => {
                let lo = if self.kind == AxisKind::Nines { 1.0 } else { lo };
                let t = log_ticks(lo, hi);
                (Scale::log(t[0], t[t.len() - 1], r0, r1), t)
            }
        }
    }
}

/// A line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    /// Draw a marker (with a tooltip of its values) at each point: for short series.
    pub markers: bool,
}

impl Series {
    pub fn new(name: &str, color: &'static str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.to_string(), color, points, markers: false }
    }
}

/// A multi-series line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub width: f64,
    pub height: f64,
}

const ML: f64 = 58.0;
const MR: f64 = 14.0;
const MT: f64 = 30.0;
const MB: f64 = 40.0;

fn open_svg(out: &mut String, w: f64, h: f64, title: &str, class: &str) {
    let t = esc(title);
    let _ = write!(
        out,
        r#"<svg class="{class}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}" font-size="11" fill="{INK}"><title>{t}</title>"#
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, fill: &str, s: &str) {
    let _ = write!(out, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" fill="{fill}">{}</text>"#, esc(s));
}

impl LineChart {
    pub fn new(title: &str, x: Axis, y: Axis) -> LineChart {
        LineChart { title: title.to_string(), x, y, series: vec![], width: 440.0, height: 230.0 }
    }

    pub fn series(mut self, s: Series) -> LineChart {
        self.series.push(s);
        self
    }

    /// Whether any series has a point to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| s.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()))
    }

    pub fn render(&self) -> String {
        let (w, h) = (self.width, self.height);
        let (px0, px1, py0, py1) = (ML, w - MR, h - MB, MT);
        let series: Vec<(&Series, Vec<(f64, f64)>)> =
            self.series.iter().map(|s| (s, decimate(&s.points, MAX_BUCKETS))).collect();
        let all = || series.iter().flat_map(|(_, p)| p.iter());
        let fold = |f: fn(&(f64, f64)) -> f64| {
            all().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
        };
        let (mut xlo, mut xhi) = fold(|p| p.0);
        let (mut ylo, mut yhi) = fold(|p| p.1);
        if !xlo.is_finite() {
            (xlo, xhi, ylo, yhi) = (0.0, 1.0, 0.0, 1.0);
        }
        let (sx, xt) = self.x.scale(xlo, xhi, px0, px1, 6);
        let (sy, yt) = self.y.scale(ylo, yhi, py0, py1, 5);
        let mut out = String::with_capacity(4096);
        open_svg(&mut out, w, h, &self.title, "chart");
        // Grid and tick labels.
        for v in &yt {
            let y = sy.map(*v);
            let _ = write!(out, r#"<line x1="{px0}" x2="{px1}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}"/>"#);
            text(&mut out, px0 - 6.0, y + 3.5, "end", MUTED, &(self.y.fmt)(*v));
        }
        let mut right = f64::NEG_INFINITY;
        for (i, v) in xt.iter().enumerate() {
            let x = sx.map(*v);
            let _ = write!(out, r#"<line x1="{x:.1}" x2="{x:.1}" y1="{py1}" y2="{py0}" stroke="{GRID}"/>"#);
            let label = if self.x.kind == AxisKind::Nines { nines_label(*v) } else { (self.x.fmt)(*v) };
            // Labels that would overlap the previous one are left out; the last one ends
            // at the plot's edge rather than overflowing it.
            let lw = 6.2 * label.chars().count() as f64;
            let last = i + 1 == xt.len() && i > 0;
            let (lx, left) = if last { (x + 4.0, x + 4.0 - lw) } else { (x, x - lw / 2.0) };
            if left > right + 6.0 {
                text(&mut out, lx, py0 + 14.0, if last { "end" } else { "middle" }, MUTED, &label);
                right = if last { lx } else { x + lw / 2.0 };
            }
        }
        let _ = write!(out, r#"<line x1="{px0}" x2="{px1}" y1="{py0}" y2="{py0}" stroke="{MUTED}"/>"#);
        text(&mut out, (px0 + px1) / 2.0, h - 6.0, "middle", MUTED, &self.x.label);
        let _ = write!(
            out,
            r#"<text transform="translate(12 {:.1}) rotate(-90)" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            (py0 + py1) / 2.0,
            esc(&self.y.label)
        );
        // Lines, clipped to the plot by construction of the domain.
        for (s, pts) in &series {
            if pts.is_empty() {
                continue;
            }
            let _ = write!(
                out,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round"><title>{}</title></path>"#,
                path_d(pts, &sx, &sy),
                s.color,
                esc(&s.name)
            );
            if s.markers || pts.len() == 1 {
                for (x, y) in pts {
                    let tip = format!("{}: {} at {}", s.name, (self.y.fmt)(*y), (self.x.fmt)(*x));
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}</title></circle>"#,
                        sx.map(*x),
                        sy.map(*y),
                        s.color,
                        esc(&tip)
                    );
                }
            }
        }
        // Legend along the top.
        let mut lx = px0;
        for (s, _) in &series {
            let _ = write!(out, r#"<rect x="{lx:.1}" y="9" width="12" height="3" fill="{}"/>"#, s.color);
            text(&mut out, lx + 16.0, 14.0, "start", INK, &s.name);
            lx += 28.0 + 6.2 * s.name.chars().count() as f64;
        }
        out.push_str("</svg>");
        out
    }
}

/// A bar of a lane chart: from `start` to `end` on the x axis.
#[derive(Debug, Clone)]
pub struct Bar {
    pub start: f64,
    pub end: f64,
    pub color: &'static str,
    /// Written inside the bar when it fits.
    pub label: String,
    pub tooltip: String,
}

/// A row of a lane chart (one worker).
#[derive(Debug, Clone)]
pub struct Lane {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// Lanes of bars over a shared linear x axis (an execution timeline).
pub fn lanes(title: &str, lanes: &[Lane], x_label: &str, fmt: fn(f64) -> String, width: f64) -> String {
    const LANE_H: f64 = 26.0;
    let (ml, top) = (78.0, 8.0);
    let h = top + LANE_H * lanes.len() as f64 + 40.0;
    let (px0, px1, py0) = (ml, width - MR, top + LANE_H * lanes.len() as f64);
    let hi = lanes.iter().flat_map(|l| l.bars.iter()).map(|b| b.end).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let ticks = nice_ticks(0.0, hi, 8);
    let sx = Scale::linear(0.0, ticks[ticks.len() - 1], px0, px1);
    let mut out = String::with_capacity(2048);
    open_svg(&mut out, width, h, title, "chart lanes");
    for v in &ticks {
        let x = sx.map(*v);
        let _ = write!(out, r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{py0}" stroke="{GRID}"/>"#);
        text(&mut out, x, py0 + 14.0, "middle", MUTED, &fmt(*v));
    }
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + LANE_H * i as f64;
        text(&mut out, ml - 8.0, y + LANE_H / 2.0 + 4.0, "end", INK, &lane.label);
        for b in lane.bars.iter().filter(|b| b.start.is_finite() && b.end.is_finite()) {
            let (x0, x1) = (sx.map(b.start), sx.map(b.end.max(b.start)));
            let bw = (x1 - x0).max(2.0);
            let _ = write!(
                out,
                r#"<g><title>{}</title><rect x="{x0:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" rx="3" fill="{}"/>"#,
                esc(&b.tooltip),
                y + 3.0,
                LANE_H - 6.0,
                b.color
            );
            if bw > 6.5 * b.label.chars().count() as f64 + 8.0 {
                text(&mut out, x0 + 5.0, y + LANE_H / 2.0 + 4.0, "start", "#ffffff", &b.label);
            }
            out.push_str("</g>");
        }
    }
    let _ = write!(out, r#"<line x1="{px0}" x2="{px1}" y1="{py0}" y2="{py0}" stroke="{MUTED}"/>"#);
    text(&mut out, (px0 + px1) / 2.0, h - 6.0, "middle", MUTED, x_label);
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one per `(label, value)`, with the value's text after each bar.
pub fn hbars(title: &str, items: &[(String, f64, String)], color: &'static str, width: f64) -> String {
    const ROW: f64 = 20.0;
    let label_w = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(0).clamp(4, 34) as f64 * 6.3 + 10.0;
    let h = ROW * items.len() as f64 + 8.0;
    let hi = items.iter().map(|i| i.1).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let sx = Scale::linear(0.0, if hi > 0.0 { hi } else { 1.0 }, label_w, width - 80.0);
    let mut out = String::with_capacity(1024);
    open_svg(&mut out, width, h, title, "chart bars");
    for (i, (label, v, shown)) in items.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        text(&mut out, label_w - 6.0, y + 13.0, "end", INK, label);
        let bw = if v.is_finite() { (sx.map(*v) - label_w).max(1.0) } else { 0.0 };
        let _ = write!(
            out,
            r#"<rect x="{label_w:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" rx="2" fill="{color}"><title>{}</title></rect>"#,
            y + 3.0,
            ROW - 6.0,
            esc(&format!("{label}: {shown}"))
        );
        text(&mut out, label_w + bw + 5.0, y + 13.0, "start", MUTED, shown);
    }
    out.push_str("</svg>");
    out
}

/// A tiny line of `values` (oldest first), its last point marked; empty for fewer than two.
pub fn sparkline(values: &[f64], color: &'static str, tooltip: &str) -> String {
    let pts: Vec<(f64, f64)> =
        values.iter().enumerate().map(|(i, v)| (i as f64, *v)).filter(|(_, v)| v.is_finite()).collect();
    if pts.len() < 2 {
        return String::new();
    }
    let (w, h) = (96.0, 22.0);
    let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
    let sx = Scale::linear(pts[0].0, pts[pts.len() - 1].0, 3.0, w - 3.0);
    let sy = Scale::linear(lo, hi, h - 3.0, 3.0);
    let pts = decimate(&pts, 48);
    let (lx, ly) = pts[pts.len() - 1];
    let t = esc(tooltip);
    format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><title>{t}</title><path d="{}" fill="none" stroke="{color}" stroke-width="1.3"/><circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{color}"/></svg>"#,
        path_d(&pts, &sx, &sy),
        sx.map(lx),
        sy.map(ly)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_1_2_5_multiples_covering_the_range() {
        assert_eq!(nice_ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 97.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(0.13, 0.41, 4), vec![0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(nice_ticks(0.0, 0.3, 3), vec![0.0, 0.1, 0.2, 0.3]);
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(nice_ticks(0.0, 0.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(f64::NAN, 1.0, 5), vec![0.0, 1.0]);
        assert_eq!(nice_step(60309.7, 5), 20000.0);
        assert_eq!(nice_step(7.0, 7), 1.0);
        let t = nice_ticks(-7.0, 13.0, 4);
        assert!(t[0] <= -7.0 && *t.last().unwrap() >= 13.0, "{t:?}");
    }

    #[test]
    fn log_ticks_and_nines_labels() {
        assert_eq!(log_ticks(3.0, 420.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(5.0, 5.0), vec![1.0, 10.0, 100.0]);
        assert_eq!(nines_label(1.0), "0%");
        assert_eq!(nines_label(10.0), "90%");
        assert_eq!(nines_label(100.0), "99%");
        assert_eq!(nines_label(1000.0), "99.9%");
        assert_eq!(nines_label(10000.0), "99.99%");
    }

    #[test]
    fn scales_map_linearly_and_logarithmically() {
        let s = Scale::linear(0.0, 10.0, 100.0, 200.0);
        assert_eq!(s.map(0.0), 100.0);
        assert_eq!(s.map(5.0), 150.0);
        let inv = Scale::linear(0.0, 10.0, 200.0, 100.0);
        assert_eq!(inv.map(10.0), 100.0);
        let l = Scale::log(1.0, 1000.0, 0.0, 300.0);
        assert!((l.map(10.0) - 100.0).abs() < 1e-9);
        assert!((l.map(100.0) - 200.0).abs() < 1e-9);
        assert_eq!(l.map(0.0), 0.0, "non-positive values clamp to the bottom");
        assert!(Scale::log(0.0, 0.0, 0.0, 1.0).d1 > 0.0);
    }

    #[test]
    fn decimation_bounds_points_and_keeps_spikes() {
        let mut pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, (i % 7) as f64)).collect();
        pts[54_321].1 = 1e6;
        pts[77_777].1 = -5.0;
        let d = decimate(&pts, MAX_BUCKETS);
        assert!(d.len() <= 2 * MAX_BUCKETS + 2, "{}", d.len());
        assert!(d.contains(&(54_321.0, 1e6)), "the spike survives");
        assert!(d.contains(&(77_777.0, -5.0)), "the dip survives");
        assert_eq!(d[0], pts[0]);
        assert_eq!(*d.last().unwrap(), pts[99_999]);
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");
        let few = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)];
        assert_eq!(decimate(&few, MAX_BUCKETS), vec![(0.0, 1.0), (2.0, 3.0)]);
    }

    #[test]
    fn text_is_escaped_and_no_style_attributes() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let c = LineChart::new("p99 <ms>", Axis::new("t (s)", AxisKind::Linear, crate::util::human::count), {
            Axis::new("latency & co", AxisKind::Linear, crate::util::human::count)
        })
        .series(Series::new("a<b", PALETTE[0], vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)]));
        let svg = c.render();
        assert!(svg.contains("p99 &lt;ms&gt;") && svg.contains("a&lt;b") && svg.contains("latency &amp; co"));
        assert!(!svg.contains("style=") && !svg.contains("NaN") && !svg.contains("http"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let l = lanes(
            "timeline",
            &[Lane {
                label: "worker 0".into(),
                bars: vec![Bar { start: 0.0, end: 5.0, color: GREEN, label: "x".into(), tooltip: "<x>".into() }],
            }],
            "s",
            crate::util::human::count,
            600.0,
        );
        assert!(l.contains("<title>&lt;x&gt;</title>") && !l.contains("style="));
        assert!(sparkline(&[1.0], GREY, "x").is_empty());
        assert!(sparkline(&[1.0, 2.0, f64::NAN, 3.0], GREY, "m").contains("<path"));
        assert!(hbars("m", &[("ping".into(), 3.0, "3".into())], PALETTE[0], 400.0).contains("ping"));
    }
}
