//! The report's figures as plain SVG. Made to survive a grey-scale print: every series has
//! its own colour (Okabe–Ito, safe for colour-blind readers), marker and dash pattern, so
//! no distinction rests on colour alone; legends sit below the plot, name each series in
//! full and wrap; ticks fall on round values (1, 2, 5 × 10ⁿ; decades on log axes) and the
//! axis labels carry the units. Text widths are estimated (no font rasteriser here), and
//! `tests/it/report_browser.rs` checks the result in a real browser.

use super::{escape, front, point, RunData};
use crate::check::units::{Dim, UNITS};
use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 14.0;
const TICK_SIZE: f64 = 12.0;
const LEGEND_SIZE: f64 = 13.0;
/// Upper estimate of a sans-serif glyph's advance as a fraction of the font size
/// (DejaVu Sans averages about 0.55 on mixed text), so wrapped lines never overrun.
const GLYPH_WIDTH: f64 = 0.62;

/// Okabe and Ito's colour-blind-safe palette without its yellow (too pale on white).
const PALETTE: &[&str] = &[
    "#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];
/// Dash patterns (SVG `stroke-dasharray`; empty is solid). Five against six markers, so
/// the (marker, dash) pair repeats only after 30 series.
const DASHES: &[&str] = &["", "9 4", "2 3", "9 3 2 3", "14 4"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    Plus,
}
const MARKERS: [Marker; 6] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
    Marker::Plus,
];

/// How series `i` is drawn. Colours cycle by 7, markers by 6 and dashes by 5: the first
/// five series differ in all three, the first 30 in marker or dash (what a grey print keeps).
#[derive(Clone, Copy, Debug)]
struct Style {
    color: &'static str,
    dash: &'static str,
    marker: Marker,
}

fn style(i: usize) -> Style {
    Style {
        color: PALETTE[i % PALETTE.len()],
        dash: DASHES[i % DASHES.len()],
        marker: MARKERS[i % MARKERS.len()],
    }
}

/// One marker centred on (x, y) with radius r; `filled` false draws its outline only.
/// `tip` becomes a `<title>` (a hover tooltip in browsers).
fn marker(out: &mut String, s: Style, x: f64, y: f64, r: f64, filled: bool, tip: Option<&str>) {
    let c = s.color;
    let paint = if filled {
        format!("fill=\"{c}\" stroke=\"{c}\" stroke-width=\"1\"")
    } else {
        format!("fill=\"none\" stroke=\"{c}\" stroke-opacity=\"0.5\" stroke-width=\"1\"")
    };
    // Crosses and pluses have no area: draw them thicker so they weigh as much as the rest.
    let line_paint = if filled {
        format!("fill=\"none\" stroke=\"{c}\" stroke-width=\"2.2\"")
    } else {
        format!("fill=\"none\" stroke=\"{c}\" stroke-opacity=\"0.5\" stroke-width=\"1\"")
    };
    let (open, attrs) = match s.marker {
        Marker::Circle => (
            format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\""),
            paint,
        ),
        Marker::Square => {
            let a = r * 0.9;
            (
                format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"",
                    x - a,
                    y - a,
                    2.0 * a,
                    2.0 * a
                ),
                paint,
            )
        }
        Marker::Triangle => {
            let a = r * 1.2;
            (
                format!(
                    "<polygon points=\"{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"",
                    y - a,
                    x - a * 0.87,
                    y + a * 0.5,
                    x + a * 0.87,
                    y + a * 0.5
                ),
                paint,
            )
        }
        Marker::Diamond => {
            let a = r * 1.2;
            (
                format!(
                    "<polygon points=\"{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}\"",
                    y - a,
                    x + a,
                    y + a,
                    x - a
                ),
                paint,
            )
        }
        Marker::Cross => (
            format!(
                "<path d=\"M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}\"",
                x - r,
                y - r,
                x + r,
                y + r,
                x - r,
                y + r,
                x + r,
                y - r
            ),
            line_paint,
        ),
        Marker::Plus => {
            let a = r * 1.2;
            (
                format!(
                    "<path d=\"M{:.1},{y:.1}L{:.1},{y:.1}M{x:.1},{:.1}L{x:.1},{:.1}\"",
                    x - a,
                    x + a,
                    y - a,
                    y + a
                ),
                line_paint,
            )
        }
    };
    let tag = match s.marker {
        Marker::Circle => "circle",
        Marker::Square => "rect",
        Marker::Triangle | Marker::Diamond => "polygon",
        Marker::Cross | Marker::Plus => "path",
    };
    match tip {
        Some(t) => {
            let _ = writeln!(out, "{open} {attrs}><title>{}</title></{tag}>", escape(t));
        }
        None => {
            let _ = writeln!(out, "{open} {attrs}/>");
        }
    }
}

/// A polyline in a series' colour and dash pattern.
fn polyline(out: &mut String, s: Style, points: &[(f64, f64)], width: f64) {
    if points.is_empty() {
        return;
    }
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let dash = if s.dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{}\"", s.dash)
    };
    let _ = writeln!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"{dash} stroke-linejoin=\"round\"/>",
        pts.join(" "),
        s.color
    );
}

/// Greedy word wrap to lines of at most `chars` characters; a word longer than a line is
/// cut. Never returns an empty list.
fn wrap(text: &str, chars: usize) -> Vec<String> {
    let chars = chars.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > chars {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..chars).collect());
        }
        let word: String = word.into_iter().collect();
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > chars {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// How many characters of `size`-pixel text fit in `px` pixels.
fn chars_in(px: f64, size: f64) -> usize {
    (px / (size * GLYPH_WIDTH)).floor().max(1.0) as usize
}

/// A legend entry: a style (drawn as a line sample with its marker) or a note (text only).
struct Entry {
    style: Option<Style>,
    text: String,
}

const SAMPLE: f64 = 36.0;
const LINE_GAP: f64 = 1.35;

fn legend_lines(entries: &[Entry], width: f64) -> Vec<Vec<String>> {
    let chars = chars_in(width - SAMPLE - 10.0, LEGEND_SIZE);
    entries.iter().map(|e| wrap(&e.text, chars)).collect()
}

fn legend_height(lines: &[Vec<String>]) -> f64 {
    let n: usize = lines.iter().map(Vec::len).sum();
    n as f64 * LEGEND_SIZE * LINE_GAP + 4.0 * lines.len() as f64
}

/// Draws the legend from (`left`, `top`) in `width` pixels, one entry per row.
fn legend(out: &mut String, entries: &[Entry], lines: &[Vec<String>], left: f64, top: f64) {
    let step = LEGEND_SIZE * LINE_GAP;
    let mut y = top;
    for (e, ls) in entries.iter().zip(lines) {
        let mid = y + step / 2.0;
        if let Some(s) = e.style {
            polyline(out, s, &[(left, mid), (left + SAMPLE, mid)], 2.0);
            marker(out, s, left + SAMPLE / 2.0, mid, 4.5, true, None);
        }
        for (k, l) in ls.iter().enumerate() {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{LEGEND_SIZE}\">{}</text>",
                left + SAMPLE + 10.0,
                y + step * (k as f64 + 1.0) - 4.0,
                escape(l)
            );
        }
        y += step * ls.len() as f64 + 4.0;
    }
}

/// Round tick values covering `[lo, hi]`: 1, 2 or 5 × 10ⁿ apart, the first at or below the
/// lower end and the last at or above the upper, about `max` intervals. Reversed
/// ends are swapped; NaN or infinite ends are replaced by the other end, or by [0, 1]; equal
/// ends are widened by a tenth of their size (or by 1 around 0).
pub(crate) fn nice_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let max = max.clamp(1, 100);
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo.min(hi), lo.max(hi)),
        (true, false) => (lo, lo),
        (false, true) => (hi, hi),
        (false, false) => (0.0, 1.0),
    };
    // Keep differences and steps finite.
    let (mut lo, mut hi) = (lo.clamp(-1e300, 1e300), hi.clamp(-1e300, 1e300));
    let size = lo.abs().max(hi.abs());
    // Ends closer than f64 labels could tell apart count as equal.
    if hi - lo <= size * 1e-9 || hi - lo < 1e-280 {
        let pad = if size > 1e-280 { size * 0.1 } else { 1.0 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let raw = (hi - lo) / max as f64;
    let exp = raw.log10().floor();
    let f = raw / 10f64.powf(exp);
    // The round step nearest the raw one (the tick count stays near `max`).
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    // A tick is k · nice · 10^exp; dividing by 10^−exp keeps 0.3 from printing as
    // 0.30000000000000004.
    let at = |k: f64| {
        if exp < 0.0 {
            k * nice / 10f64.powf(-exp)
        } else {
            k * nice * 10f64.powf(exp)
        }
    };
    let step = at(1.0);
    if !(step.is_finite() && step > 0.0) {
        return vec![lo, hi];
    }
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    if !(first.is_finite() && last.is_finite()) || last - first > 2.0 * max as f64 + 2.0 {
        return vec![lo, hi];
    }
    let mut ticks = Vec::new();
    let mut k = first;
    while k <= last {
        let v = at(k);
        ticks.push(if v == 0.0 { 0.0 } else { v });
        k += 1.0;
    }
    ticks
}

/// A tick's label with as many decimals as its step needs (none for a step of 1 or more);
/// scientific notation for values of a million or more, or steps below a millionth.
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let step = step.abs();
    if v.abs() >= 1e6 || (step > 0.0 && step < 1e-6) {
        return format!("{v:e}");
    }
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        0
    };
    let s = format!("{v:.decimals$}");
    // "-0", "-0.0": a rounded zero has no sign.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// The step between consecutive ticks (0 for fewer than two).
fn step_of(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => b - a,
        _ => 0.0,
    }
}

/// A logarithmic energy axis from `lo` to `hi` (log10 of picojoules): its decade range,
/// the unit its labels are written in, labelled decades and unlabelled minor ticks.
struct EnergyAxis {
    lo: f64,
    hi: f64,
    /// As written in the axis label (µJ, not uJ).
    unit: String,
    major: Vec<(f64, String)>,
    minor: Vec<f64>,
}

const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// 10^k as a label: plain digits from 0.001 to 10 000, else 10 with a superscript.
fn power_label(k: i32) -> String {
    match k {
        0..=4 => 10u32.pow(k as u32).to_string(),
        -3..=-1 => format!("0.{}1", "0".repeat((-k - 1) as usize)),
        _ => {
            let digits: String = k
                .unsigned_abs()
                .to_string()
                .chars()
                .filter_map(|c| c.to_digit(10).map(|d| SUPERSCRIPT[d as usize]))
                .collect();
            format!("10{}{digits}", if k < 0 { "⁻" } else { "" })
        }
    }
}

/// m × 10^k as a label (m is 1, 2 or 5): plain digits from 0.001 to 10 000.
fn mantissa_label(m: u32, k: i32) -> String {
    match (m, k) {
        (1, _) => power_label(k),
        (_, 0..=3) => (m * 10u32.pow(k as u32)).to_string(),
        (_, -3..=-1) => format!("0.{}{m}", "0".repeat((-k - 1) as usize)),
        _ => format!("{m}×{}", power_label(k)),
    }
}

/// `v` (log10) moved down (or up) to the nearest log10 of 1, 2 or 5 × 10ⁿ.
fn snap_125(v: f64, up: bool) -> f64 {
    let steps = [0.0, 2f64.log10(), 5f64.log10(), 1.0];
    let (d, f) = (v.floor(), v - v.floor());
    let s = if up {
        steps.iter().find(|s| **s >= f - 1e-9)
    } else {
        steps.iter().rev().find(|s| **s <= f + 1e-9)
    };
    d + s.copied().unwrap_or(0.0)
}

/// A log axis for `[lo, hi]` (log10 pJ; non-finite or reversed ends are handled as in
/// [`nice_ticks`]): padded so no point sits on the frame, its ends at 1, 2 or 5 × 10ⁿ,
/// labelled at decades (also at 2 and 5 × 10ⁿ when it spans two decades or less).
fn energy_axis(lo: f64, hi: f64) -> EnergyAxis {
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo.min(hi), lo.max(hi)),
        (true, false) => (lo, lo),
        (false, true) => (hi, hi),
        (false, false) => (0.0, 1.0),
    };
    let (lo, hi) = (lo.clamp(-300.0, 300.0), hi.clamp(-300.0, 300.0));
    let pad = 0.04 * (hi - lo) + 0.03;
    let (a, b) = (snap_125(lo - pad, false), snap_125(hi + pad, true));
    // The unit whose 1 is nearest the axis's middle (in joules; the larger on a tie), so
    // labels stay near 1.
    let mid = (a + b) / 2.0 - 12.0;
    let mut energy: Vec<(&str, f64)> = UNITS
        .iter()
        .filter(|u| u.1 == Dim::Energy)
        .map(|u| (u.0, u.2.log10().round()))
        .collect();
    energy.sort_by(|x, y| y.1.total_cmp(&x.1));
    let (name, unit_exp) = energy
        .iter()
        .min_by(|x, y| (x.1 - mid).abs().total_cmp(&(y.1 - mid).abs()))
        .map_or(("pJ", -12.0), |u| (u.0, u.1));
    let unit = if name == "uJ" { "µJ" } else { name }.to_string();
    let shift = -12 - unit_exp as i32;
    let inside = |v: f64| v >= a - 1e-9 && v <= b + 1e-9;
    let (first, last) = (a.floor() as i32, b.ceil() as i32);
    let decades: Vec<i32> = (first..=last).filter(|&e| inside(f64::from(e))).collect();
    // Label at most about eight decades.
    let every = decades.len().div_ceil(8).max(1);
    let mut major: Vec<(f64, String)> = decades
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(_, &e)| (f64::from(e), power_label(e + shift)))
        .collect();
    // Two decades or less: decade labels alone would be two or three; add 2 and 5 × 10ⁿ.
    if b - a <= 2.0 + 1e-9 {
        major = (first..=last)
            .flat_map(|e| [1u32, 2, 5].map(|m| (e, m)))
            .map(|(e, m)| (f64::from(e) + f64::from(m).log10(), e, m))
            .filter(|p| inside(p.0))
            .map(|(v, e, m)| (v, mantissa_label(m, e + shift)))
            .collect();
    }
    // Minor ticks (2…9 × 10ⁿ) while they stay apart, strictly inside, not on a label.
    let minor = if b - a <= 4.0 {
        (first..=last)
            .flat_map(|e| (2..=9).map(move |m| f64::from(e) + f64::from(m).log10()))
            .filter(|&v| v > a + 1e-9 && v < b - 1e-9)
            .filter(|&v| major.iter().all(|m| (m.0 - v).abs() > 1e-9))
            .collect()
    } else {
        Vec::new()
    };
    EnergyAxis {
        lo: a,
        hi: b,
        unit,
        major,
        minor,
    }
}

struct Axes {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// Where the plot area sits: below the title, with room for tick labels, the axis
/// labels and the legend below.
const LEFT: f64 = 84.0;
const RIGHT: f64 = WIDTH - 28.0;
const TOP: f64 = 52.0;
const PLOT_HEIGHT: f64 = 320.0;

impl Axes {
    fn new(x0: f64, x1: f64, y0: f64, y1: f64) -> Axes {
        Axes {
            x0,
            x1,
            y0,
            y1,
            left: LEFT,
            right: RIGHT,
            top: TOP,
            bottom: TOP + PLOT_HEIGHT,
        }
    }
    fn x(&self, v: f64) -> f64 {
        self.left + (v - self.x0) / (self.x1 - self.x0).max(1e-300) * (self.right - self.left)
    }
    fn y(&self, v: f64) -> f64 {
        self.bottom - (v - self.y0) / (self.y1 - self.y0).max(1e-300) * (self.bottom - self.top)
    }
    /// Where the legend starts: below the x tick labels and the x axis label.
    fn legend_top(&self) -> f64 {
        self.bottom + 62.0
    }
    /// Grid, frame, ticks (major labelled, minor as short marks) and axis labels.
    fn frame(
        &self,
        out: &mut String,
        (xlabel, ylabel): (&str, &str),
        xticks: &[(f64, String)],
        xminor: &[f64],
        yticks: &[(f64, String)],
    ) {
        for v in xminor {
            let x = self.x(*v);
            let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eeeeee\"/><line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>", self.top, self.bottom, self.bottom, self.bottom + 3.0);
        }
        for (v, label) in xticks {
            let x = self.x(*v);
            let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#cccccc\"/><line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{TICK_SIZE}\">{}</text>", self.top, self.bottom, self.bottom, self.bottom + 6.0, self.bottom + 20.0, escape(label));
        }
        for (v, label) in yticks {
            let y = self.y(*v);
            let _ = writeln!(out, "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#cccccc\"/><line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"black\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"{TICK_SIZE}\">{}</text>", self.left, self.right, self.left - 6.0, self.left, self.left - 9.0, y + 4.0, escape(label));
        }
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
            self.left,
            self.top,
            self.right - self.left,
            self.bottom - self.top
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{LABEL_SIZE}\">{}</text>",
            (self.left + self.right) / 2.0,
            self.bottom + 42.0,
            escape(xlabel)
        );
        let mid = (self.top + self.bottom) / 2.0;
        let _ = writeln!(out, "<text x=\"22\" y=\"{mid:.1}\" text-anchor=\"middle\" font-size=\"{LABEL_SIZE}\" transform=\"rotate(-90 22 {mid:.1})\">{}</text>", escape(ylabel));
    }
}

/// The document: white background, the title (wrapped) centred at the top.
fn document(height: f64, title: &str, body: &str) -> String {
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"{TICK_SIZE}\" fill=\"black\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (k, line) in wrap(title, chars_in(WIDTH - 20.0, TITLE_SIZE))
        .iter()
        .take(2)
        .enumerate()
    {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{TITLE_SIZE}\" font-weight=\"bold\">{}</text>",
            WIDTH / 2.0,
            22.0 + 18.0 * k as f64,
            escape(line)
        );
    }
    out.push_str(body);
    out.push_str("</svg>\n");
    out
}

/// Error (1 − noisy accuracy) against energy per inference (log scale): every evaluated
/// candidate as a hollow marker, each run's front as a line through filled markers.
/// `split` names the data split the errors were measured on ("validation", "test").
pub fn pareto_svg(runs: &[RunData], split: &str) -> String {
    let pts: Vec<(f64, f64)> = runs
        .iter()
        .flat_map(|r| r.candidates.iter().filter_map(point))
        .collect();
    let (mut emin, mut emax) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut errmax: f64 = 0.0;
    for &(err, pj) in &pts {
        emin = emin.min(pj.log10());
        emax = emax.max(pj.log10());
        errmax = errmax.max(err);
    }
    let xaxis = energy_axis(emin, emax);
    let yt = nice_ticks(0.0, (errmax * 1.05).clamp(0.05, 1.0), 5);
    let ystep = step_of(&yt);
    let ax = Axes::new(
        xaxis.lo,
        xaxis.hi,
        yt.first().copied().unwrap_or(0.0),
        yt.last().copied().unwrap_or(1.0),
    );
    let mut body = String::new();
    let yticks: Vec<(f64, String)> = yt
        .iter()
        .map(|&v| (v, tick_label(v * 100.0, ystep * 100.0)))
        .collect();
    ax.frame(
        &mut body,
        (
            &format!("energy per inference ({}, log scale)", xaxis.unit),
            &format!("error under noise, {split} split (%)"),
        ),
        &xaxis.major,
        &xaxis.minor,
        &yticks,
    );
    if pts.is_empty() {
        let _ = writeln!(body, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{LABEL_SIZE}\">nothing evaluated yet</text>", (ax.left + ax.right) / 2.0, (ax.top + ax.bottom) / 2.0);
    }
    let mut entries = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let s = style(ri);
        for c in &run.candidates {
            if let Some((err, pj)) = point(c) {
                marker(&mut body, s, ax.x(pj.log10()), ax.y(err), 3.0, false, None);
            }
        }
        let f = front(run);
        let line: Vec<(f64, f64)> = f
            .iter()
            .filter_map(|&i| point(&run.candidates[i]))
            .map(|(err, pj)| (ax.x(pj.log10()), ax.y(err)))
            .collect();
        polyline(&mut body, s, &line, 2.0);
        for &i in &f {
            if let Some((err, pj)) = point(&run.candidates[i]) {
                let tip = format!("#{} {}", run.candidates[i].id, run.label);
                marker(
                    &mut body,
                    s,
                    ax.x(pj.log10()),
                    ax.y(err),
                    4.5,
                    true,
                    Some(&tip),
                );
            }
        }
        let evaluated = run.candidates.iter().filter(|c| point(c).is_some()).count();
        entries.push(Entry {
            style: Some(s),
            text: format!(
                "{}: front of {} from {evaluated} evaluated",
                run.label,
                f.len()
            ),
        });
    }
    entries.push(Entry {
        style: None,
        text: "Filled markers joined by a line: a run's Pareto front. Hollow markers: every evaluated candidate.".into(),
    });
    let lines = legend_lines(&entries, ax.right - ax.left);
    legend(&mut body, &entries, &lines, ax.left, ax.legend_top());
    let height = ax.legend_top() + legend_height(&lines) + 12.0;
    document(
        height,
        &format!("Error under noise ({split} split) vs energy per inference"),
        &body,
    )
}

/// Hypervolume after each evaluation, one line per curve, labelled in full below the plot.
/// `split` names the split the front was measured on.
pub fn hypervolume_svg(curves: &[(String, Vec<(usize, f64)>)], split: &str) -> String {
    let xmax = curves
        .iter()
        .flat_map(|c| c.1.last().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // The y axis spans the data (not from 0): the curves' rise is what the figure shows.
    let (ymin, ymax) = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    // Whole evaluations: never more intervals than evaluations.
    let xt = nice_ticks(0.0, xmax, (xmax as usize).clamp(1, 5));
    let yt = if ymin <= ymax {
        // A little headroom so the highest curve does not run along the frame.
        nice_ticks(ymin, ymax + 0.03 * (ymax - ymin), 5)
    } else {
        nice_ticks(0.0, 1.0, 5)
    };
    let ax = Axes::new(
        0.0,
        xt.last().copied().unwrap_or(xmax),
        yt.first().copied().unwrap_or(0.0),
        yt.last().copied().unwrap_or(1.0),
    );
    let (xs, ys) = (step_of(&xt), step_of(&yt));
    let xticks: Vec<(f64, String)> = xt.iter().map(|&v| (v, tick_label(v, xs))).collect();
    let yticks: Vec<(f64, String)> = yt.iter().map(|&v| (v, tick_label(v, ys))).collect();
    let mut body = String::new();
    ax.frame(
        &mut body,
        (
            "evaluations (count)",
            "hypervolume (error × decades of energy)",
        ),
        &xticks,
        &[],
        &yticks,
    );
    let mut entries = Vec::new();
    for (ci, (label, curve)) in curves.iter().enumerate() {
        let s = style(ci);
        let pts: Vec<(f64, f64)> = curve
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| (ax.x(x as f64), ax.y(y)))
            .collect();
        polyline(&mut body, s, &pts, 2.0);
        // About eight markers per line, staggered so that overlapping lines stay apart.
        let every = (pts.len() / 8).max(1);
        let offset = (ci * every / curves.len().max(1)) % every;
        for p in pts.iter().skip(offset).step_by(every) {
            marker(&mut body, s, p.0, p.1, 4.0, true, None);
        }
        entries.push(Entry {
            style: Some(s),
            text: label.clone(),
        });
    }
    let lines = legend_lines(&entries, ax.right - ax.left);
    legend(&mut body, &entries, &lines, ax.left, ax.legend_top());
    let height = ax.legend_top() + legend_height(&lines) + 12.0;
    document(
        height,
        &format!("Hypervolume of the front ({split} split) vs evaluations"),
        &body,
    )
}

#[cfg(test)]
mod tests;
