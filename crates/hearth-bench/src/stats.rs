//! Percentiles, and the markdown tables the runs are summarised in (median of the runs,
//! min–max beside it).

/// The `p`-th percentile (nearest rank) of `samples`; NaN when there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, p)
}

/// [`percentile`] of samples already sorted.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One row of a summary table: a figure, its unit, its value in each run and how many
/// decimals to print.
#[derive(Debug)]
pub struct Row {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
    decimals: usize,
}

impl Row {
    /// A row.
    pub fn new(name: impl Into<String>, unit: &'static str, decimals: usize, values: Vec<f64>) -> Self {
        Self { name: name.into(), unit, values, decimals }
    }
}

/// A markdown table `| figure | median | min–max | runs |`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| figure | median | min–max | each run |\n|---|---|---|---|\n");
    for row in rows {
        let d = row.decimals;
        let median = percentile(&row.values, 50.0);
        let min = row.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = row.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let each: Vec<String> = row.values.iter().map(|v| format!("{v:.d$}")).collect();
        let unit = if row.unit.is_empty() { String::new() } else { format!(" {}", row.unit) };
        out.push_str(&format!("| {} | {median:.d$}{unit} | {min:.d$}–{max:.d$} | {} |\n", row.name, each.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 51.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&samples, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn tables_show_median_and_range() {
        let text = table(&[Row::new("x", "ms", 1, vec![3.0, 1.0, 2.0])]);
        assert!(text.contains("| x | 2.0 ms | 1.0–3.0 | 3.0, 1.0, 2.0 |"), "{text}");
    }
}
