//! The results table.

use std::fmt::Write as _;

/// One measured quantity, with its unit.
#[derive(Clone, Copy, Debug)]
pub enum Figure {
    PerSecond(f64, &'static str),
    Micros(f64),
    Nanos(f64),
    Millis(f64),
    KiB(f64),
}

impl Figure {
    pub fn value(&self) -> f64 {
        match *self {
            Figure::PerSecond(v, _)
            | Figure::Micros(v)
            | Figure::Nanos(v)
            | Figure::Millis(v)
            | Figure::KiB(v) => v,
        }
    }

    fn show(&self) -> String {
        match *self {
            Figure::PerSecond(v, unit) => format!("{} {unit}/s", group(v)),
            Figure::Micros(v) => format!("{v:.0} µs"),
            Figure::Nanos(v) => format!("{v:.1} ns"),
            Figure::Millis(v) if v < 10.0 => format!("{v:.2} ms"),
            Figure::Millis(v) => format!("{v:.1} ms"),
            Figure::KiB(v) => format!("{v:.2} KiB"),
        }
    }
}

/// 1234567.8 -> "1,234,568".
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a row must reach.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// peerchat / baseline at least this.
    RatioAtLeast(f64),
    /// peerchat / baseline at most this.
    RatioAtMost(f64),
    /// peerchat's own figure below this (in the figure's unit).
    Below(f64),
    /// peerchat's own figure at most this.
    AtMost(f64),
    /// Printed for information.
    None,
}

impl Target {
    fn show(&self) -> String {
        match *self {
            Target::RatioAtLeast(r) => format!("≥ {r}× baseline"),
            Target::RatioAtMost(r) => format!("≤ {r}× baseline"),
            Target::Below(v) => format!("< {v}"),
            Target::AtMost(v) => format!("≤ {v}"),
            Target::None => "-".into(),
        }
    }
}

/// A row: a figure per side (or why there is none), and the target.
pub struct Row {
    pub scenario: String,
    pub peerchat: Result<Figure, String>,
    pub baseline: Result<Figure, String>,
    pub target: Target,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        peerchat: Result<Figure, String>,
        baseline: Result<Figure, String>,
        target: Target,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            peerchat,
            baseline,
            target,
        }
    }

    fn ratio(&self) -> Option<f64> {
        match (&self.peerchat, &self.baseline) {
            (Ok(p), Ok(b)) if b.value() > 0.0 => Some(p.value() / b.value()),
            _ => None,
        }
    }

    /// "yes", "NO", or "-" when there is nothing to judge.
    fn met(&self) -> &'static str {
        let verdict = match self.target {
            Target::RatioAtLeast(r) => self.ratio().map(|x| x >= r),
            Target::RatioAtMost(r) => self.ratio().map(|x| x <= r),
            Target::Below(v) => self.peerchat.as_ref().ok().map(|p| p.value() < v),
            Target::AtMost(v) => self.peerchat.as_ref().ok().map(|p| p.value() <= v),
            Target::None => None,
        };
        match verdict {
            Some(true) => "yes",
            Some(false) => "NO",
            None if matches!(self.target, Target::None) => "-",
            None => "not measured",
        }
    }
}

/// The table as text (Markdown, readable as is in a terminal).
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let show = |side: &Result<Figure, String>| match side {
                Ok(figure) => figure.show(),
                Err(why) => why.clone(),
            };
            [
                row.scenario.clone(),
                show(&row.peerchat),
                show(&row.baseline),
                row.ratio()
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into()),
                row.target.show(),
                row.met().into(),
            ]
        })
        .collect();
    let header = [
        "scenario", "peerchat", "baseline", "ratio", "target", "met?",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        out.push('|');
        for (cell, w) in row.iter().zip(widths) {
            let pad = w - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    out.push('|');
    for w in widths {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    out.push('\n');
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

/// The p-th percentile by the nearest-rank method; 0 for no values.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    if p == 50.0 && values.len().is_multiple_of(2) {
        let mid = values.len() / 2;
        return (values[mid - 1] + values[mid]) / 2.0;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(median(&mut v), 50.5);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }

    #[test]
    fn judges_targets() {
        let row = Row::new(
            "x",
            Ok(Figure::PerSecond(60.0, "msg")),
            Ok(Figure::PerSecond(100.0, "msg")),
            Target::RatioAtLeast(0.5),
        );
        assert_eq!(row.met(), "yes");
        let row = Row::new(
            "x",
            Ok(Figure::Micros(300.0)),
            Ok(Figure::Micros(100.0)),
            Target::RatioAtMost(2.0),
        );
        assert_eq!(row.met(), "NO");
        let row = Row::new(
            "x",
            Err("n/a".into()),
            Err("n/a".into()),
            Target::Below(1.0),
        );
        assert_eq!(row.met(), "not measured");
        assert_eq!(group(1234567.4), "1,234,567");
    }
}
