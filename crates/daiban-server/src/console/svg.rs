//! Bar charts as inline SVG, drawn on the server so the page needs no
//! plotting library.

use std::fmt::Write as _;

use super::html::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

/// One series of a chart: its CSS class (`bar`, `bar-grid` or
/// `bar-county`), its name and a value per label.
pub struct Series<'a> {
    pub class: &'static str,
    pub name: &'a str,
    pub values: Vec<u64>,
}

/// Draws `series` as bars stacked on each other above each of `labels`,
/// with a value axis and, for more than one series, a legend. Every
/// `label_every`-th label is written, so dense axes stay readable.
pub fn stacked_bars(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    label_every: usize,
) -> String {
    let totals: Vec<u64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let scale = |value: u64| value as f64 / max as f64 * plot_height;

    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    );
    // The value axis: zero and the maximum.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{WIDTH}\" y2=\"{y0}\" stroke=\"#bcccdc\"/>\
         <text x=\"{x}\" y=\"{y0}\" text-anchor=\"end\">0</text>\
         <text x=\"{x}\" y=\"{ytop}\" text-anchor=\"end\">{max}</text>",
        y0 = HEIGHT - BOTTOM,
        x = LEFT - 4.0,
        ytop = TOP + 8.0,
    );
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let h = scale(value);
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\">\
                 <title>{} {}：{value}</title></rect>",
                s.class,
                escape(label),
                escape(s.name)
            );
        }
        if i % label_every.max(1) == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str("<p class=\"legend\">");
        for s in series {
            let color = match s.class {
                "bar-grid" => "var(--grid)",
                "bar-county" => "var(--county)",
                _ => "var(--accent)",
            };
            let _ = write!(
                svg,
                "<span><i style=\"background:{color}\"></i>{}</span>",
                escape(s.name)
            );
        }
        svg.push_str("</p>");
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_one_rect_per_nonzero_value() {
        let labels = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let series = [
            Series {
                class: "bar-grid",
                name: "本网格",
                values: vec![1, 0, 2],
            },
            Series {
                class: "bar-county",
                name: "全县",
                values: vec![1, 1, 0],
            },
        ];
        let svg = stacked_bars("t", &labels, &series, 1);
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("class=\"legend\""), "legend for two series");
    }
}
