//! The run's chart, written by hand as SVG: the latency distribution (latency against
//! percentile, on a "nines" axis so the tail is visible) and, when the run swept subscriber
//! counts, deliveries per second against subscribers.

use std::fmt::Write;

use crate::report::RunRecord;

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 320.0;
/// Margins inside a panel: left (y labels), right, top (title), bottom (x labels).
const M_LEFT: f64 = 70.0;
const M_RIGHT: f64 = 20.0;
const M_TOP: f64 = 40.0;
const M_BOTTOM: f64 = 50.0;
/// Height of the chart's own title line.
const TITLE_H: f64 = 30.0;
/// Largest "nines" on the percentile axis (99.999%); the maximum is drawn there.
const MAX_NINES: f64 = 5.0;

/// The chart for `record`.
pub fn chart(record: &RunRecord) -> String {
    let panels = if record.sweep.len() > 1 { 2.0 } else { 1.0 };
    let width = PANEL_W * panels;
    let height = PANEL_H + TITLE_H;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let mut title = format!("{} · {}", record.scenario, record.target);
    if !record.label.is_empty() {
        title.push_str(&format!(" · {}", record.label));
    }
    let _ = writeln!(
        svg,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    latency_panel(&mut svg, record, 0.0, TITLE_H);
    if panels > 1.0 {
        sweep_panel(&mut svg, record, PANEL_W, TITLE_H);
    }
    svg.push_str("</svg>\n");
    svg
}

/// x = -log10(1 - q): 0 at the minimum, 1 at p90, 2 at p99, ...; the maximum at [`MAX_NINES`].
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (-(1.0 - q).log10()).min(MAX_NINES)
    }
}

fn latency_panel(svg: &mut String, record: &RunRecord, x0: f64, y0: f64) {
    let frame = Frame::new(x0, y0);
    frame.title(svg, "latency distribution (ms)");
    if record.latency_curve.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no latency recorded</text>"#,
            x0 + PANEL_W / 2.0,
            y0 + PANEL_H / 2.0
        );
        return;
    }
    let y_max = nice_ceiling(
        record
            .latency_curve
            .iter()
            .map(|p| p[1])
            .fold(0.0, f64::max),
    );
    frame.axes(svg);
    for (n, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "max"]
        .iter()
        .enumerate()
    {
        frame.x_tick(svg, n as f64 / MAX_NINES, label);
    }
    frame.y_ticks(svg, y_max);
    frame.x_label(svg, "percentile");
    let points: Vec<(f64, f64)> = record
        .latency_curve
        .iter()
        .map(|p| (nines(p[0]) / MAX_NINES, p[1] / y_max))
        .collect();
    frame.line(svg, &points, "#1f77b4");
}

fn sweep_panel(svg: &mut String, record: &RunRecord, x0: f64, y0: f64) {
    let frame = Frame::new(x0, y0);
    frame.title(svg, "deliveries/s against subscribers");
    let x_max = nice_ceiling(
        record
            .sweep
            .iter()
            .map(|p| p.subscribers as f64)
            .fold(0.0, f64::max),
    );
    let y_max = nice_ceiling(
        record
            .sweep
            .iter()
            .map(|p| p.deliveries_per_sec)
            .fold(0.0, f64::max),
    );
    frame.axes(svg);
    for i in 0..=4 {
        let v = x_max * i as f64 / 4.0;
        frame.x_tick(svg, i as f64 / 4.0, &short(v));
    }
    frame.y_ticks(svg, y_max);
    frame.x_label(svg, "subscribers");
    let points: Vec<(f64, f64)> = record
        .sweep
        .iter()
        .map(|p| (p.subscribers as f64 / x_max, p.deliveries_per_sec / y_max))
        .collect();
    frame.line(svg, &points, "#d62728");
}

/// The plotting area of one panel; coordinates inside are fractions 0..=1.
struct Frame {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
}

impl Frame {
    fn new(x0: f64, y0: f64) -> Self {
        Self {
            left: x0 + M_LEFT,
            top: y0 + M_TOP,
            w: PANEL_W - M_LEFT - M_RIGHT,
            h: PANEL_H - M_TOP - M_BOTTOM,
        }
    }

    fn x(&self, fx: f64) -> f64 {
        self.left + fx.clamp(0.0, 1.0) * self.w
    }

    fn y(&self, fy: f64) -> f64 {
        self.top + (1.0 - fy.clamp(0.0, 1.0)) * self.h
    }

    fn title(&self, svg: &mut String, text: &str) {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="13">{}</text>"#,
            self.left,
            self.top - 15.0,
            escape(text)
        );
    }

    fn axes(&self, svg: &mut String) {
        let _ = writeln!(
            svg,
            r##"<polyline points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="none" stroke="#333"/>"##,
            self.x(0.0),
            self.y(1.0),
            self.x(0.0),
            self.y(0.0),
            self.x(1.0),
            self.y(0.0)
        );
    }

    fn x_tick(&self, svg: &mut String, fx: f64, label: &str) {
        let (x, y) = (self.x(fx), self.y(0.0));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
            y + 5.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y + 18.0,
            escape(label)
        );
    }

    fn y_ticks(&self, svg: &mut String, max: f64) {
        for i in 0..=4 {
            let f = i as f64 / 4.0;
            let (x, y) = (self.x(0.0), self.y(f));
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
                self.x(1.0)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x - 6.0,
                y + 4.0,
                escape(&short(max * f))
            );
        }
    }

    fn x_label(&self, svg: &mut String, text: &str) {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            self.left + self.w / 2.0,
            self.y(0.0) + 38.0,
            escape(text)
        );
    }

    fn line(&self, svg: &mut String, points: &[(f64, f64)], colour: &str) {
        let coords: Vec<String> = points
            .iter()
            .map(|&(fx, fy)| format!("{:.1},{:.1}", self.x(fx), self.y(fy)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            coords.join(" ")
        );
        for &(fx, fy) in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                self.x(fx),
                self.y(fy)
            );
        }
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `v` (1 for nothing positive).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A short axis label: 1.5k, 2M, 0.25.
fn short(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if v >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if v >= 1e3 {
        format!("{}k", trim(format!("{:.2}", v / 1e3)))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Escapes text for XML character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::SweepPoint;

    /// A small well-formedness check: every tag closes in order, attributes are quoted, and
    /// `&` only starts an entity. Returns the number of elements.
    pub(crate) fn check_well_formed(xml: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open])?;
            let close = rest[open..].find('>').ok_or("unclosed '<'")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .ok_or(format!("</{name}> without an open tag"))?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body
                .split_whitespace()
                .next()
                .ok_or("empty tag")?
                .to_owned();
            if !body.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{body}>"));
            }
            check_text(body)?;
            elements += 1;
            if !self_closing {
                stack.push(name);
            }
            if stack.is_empty() && self_closing && elements == 1 {
                return Err("the root element is empty".into());
            }
        }
        check_text(rest)?;
        if let Some(open) = stack.pop() {
            return Err(format!("<{open}> is never closed"));
        }
        Ok(elements)
    }

    fn check_text(text: &str) -> Result<(), String> {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| entity.starts_with(e))
            {
                return Err(format!("bare '&' in {text:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn the_checker_catches_broken_xml() {
        assert!(check_well_formed("<svg><g></g></svg>").is_ok());
        assert!(check_well_formed("<svg><g></svg>").is_err());
        assert!(check_well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(check_well_formed(r#"<svg><rect x="1/></svg>"#).is_err());
        assert!(check_well_formed("<svg>").is_err());
    }

    #[test]
    fn charts_are_well_formed_with_and_without_data() {
        let mut record = RunRecord::new("fanout", "switchboard", "<odd> & \"label\"");
        let empty = chart(&record);
        assert!(check_well_formed(&empty).unwrap() > 3);
        assert!(empty.contains("no latency recorded"));
        assert!(empty.contains("&lt;odd&gt; &amp; &quot;label&quot;"));

        record.latency_curve = vec![
            [0.0, 0.2],
            [0.5, 1.0],
            [0.99, 4.5],
            [0.999, 9.0],
            [1.0, 30.0],
        ];
        record.sweep = [1000u64, 2000, 5000, 10000]
            .iter()
            .map(|&s| SweepPoint {
                subscribers: s,
                deliveries_per_sec: s as f64 * 150.0,
                deliveries_per_cpu_sec: s as f64 * 300.0,
                p99_ms: 5.0,
                lost: 0,
            })
            .collect();
        let full = chart(&record);
        let elements = check_well_formed(&full).unwrap();
        assert!(elements > 30, "{elements} elements");
        assert!(full.contains("deliveries/s against subscribers"));
        assert!(full.contains("99.9%"));
        assert_eq!(full.matches("<polyline").count(), 4, "two axes, two curves");
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(1500.0), 2000.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(2000.0), "2k");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(0.0), "0");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
        assert_eq!(nines(0.0), 0.0);
    }
}
