//! Server-rendered line charts: the geometry is computed here and drawn by the template as SVG
//! (no script, no external asset), with the data in a table beneath for reading and for
//! screen readers.

pub const WIDTH: i64 = 720;
pub const HEIGHT: i64 = 220;
/// Room for the axis labels.
const LEFT: i64 = 48;
const BOTTOM: i64 = 24;
const TOP: i64 = 10;
const RIGHT: i64 = 10;

pub struct Series {
    pub name: &'static str,
    /// CSS class (its colour in the stylesheet).
    pub class: &'static str,
    /// SVG `points` attribute.
    pub points: String,
    pub total: i64,
}

pub struct Tick {
    pub pos: i64,
    pub label: String,
}

pub struct LineChart {
    /// The `<svg>` element's id (a page may draw several charts).
    pub id: &'static str,
    pub title: String,
    pub series: Vec<Series>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub width: i64,
    pub height: i64,
    pub left: i64,
    pub right_edge: i64,
    pub baseline: i64,
}

/// A "nice" axis maximum at or above `max` (1, 2 or 5 times a power of ten).
fn nice_max(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            let candidate = step.saturating_mul(m);
            if candidate >= max {
                return candidate;
            }
        }
        step = step.saturating_mul(10);
    }
}

impl LineChart {
    /// `values[i]` is one series' values, one per x position; `x_labels` labels some positions.
    pub fn new(
        id: &'static str,
        title: String,
        values: Vec<(&'static str, &'static str, Vec<i64>)>,
        x_labels: Vec<(usize, String)>,
    ) -> Self {
        let n = values.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
        let y_max = nice_max(
            values
                .iter()
                .flat_map(|(_, _, v)| v.iter().copied())
                .max()
                .unwrap_or(0)
                .max(1),
        );
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let span = i64::try_from(n.saturating_sub(1)).unwrap_or(1).max(1);
        let x = |i: usize| LEFT + i64::try_from(i).unwrap_or(0) * plot_w / span;
        let y = |v: i64| TOP + plot_h - v * plot_h / y_max;
        let series = values
            .into_iter()
            .map(|(name, class, v)| Series {
                name,
                class,
                total: v.iter().sum(),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{},{}", x(i), y(*v)))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        let y_ticks = (0..=4)
            .map(|k| {
                let v = y_max * k / 4;
                Tick {
                    pos: y(v),
                    label: v.to_string(),
                }
            })
            .collect();
        let x_ticks = x_labels
            .into_iter()
            .map(|(i, label)| Tick { pos: x(i), label })
            .collect();
        LineChart {
            id,
            title,
            series,
            y_ticks,
            x_ticks,
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right_edge: WIDTH - RIGHT,
            baseline: TOP + plot_h,
        }
    }
}

/// A horizontal bar chart: one labelled bar per row, scaled to the largest value.
pub struct BarChart {
    pub id: &'static str,
    pub title: String,
    pub bars: Vec<Bar>,
    pub width: i64,
    pub height: i64,
    /// Where bars start (labels sit to the left).
    pub left: i64,
}

pub struct Bar {
    pub label: String,
    /// The value as shown beside the bar.
    pub shown: String,
    pub value: i64,
    pub y: i64,
    pub length: i64,
}

const BAR_LABEL_WIDTH: i64 = 260;
const BAR_ROW: i64 = 22;
const BAR_THICKNESS: i64 = 14;
/// Room at the right for the value.
const BAR_VALUE_WIDTH: i64 = 80;

impl BarChart {
    /// `rows` are (label, value, value as shown), drawn in the given order.
    pub fn new(id: &'static str, title: String, rows: Vec<(String, i64, String)>) -> Self {
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
        let span = WIDTH - BAR_LABEL_WIDTH - BAR_VALUE_WIDTH;
        let bars: Vec<Bar> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (label, value, shown))| Bar {
                label,
                shown,
                value,
                y: TOP + i64::try_from(i).unwrap_or(0) * BAR_ROW,
                length: value.max(0) * span / max,
            })
            .collect();
        let height = TOP * 2 + i64::try_from(bars.len()).unwrap_or(0).max(1) * BAR_ROW;
        BarChart {
            id,
            title,
            bars,
            width: WIDTH,
            height,
            left: BAR_LABEL_WIDTH,
        }
    }

    /// The thickness of a bar (the template draws it).
    pub fn thickness(&self) -> i64 {
        BAR_THICKNESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maximum_is_a_round_number_at_or_above_the_data() {
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(4_001), 5_000);
    }

    #[test]
    fn points_span_the_plot_and_zero_sits_on_the_baseline() {
        let c = LineChart::new("t", "t".into(), vec![("a", "a", vec![0, 5, 10])], vec![]);
        assert_eq!(
            c.series[0].points,
            format!(
                "{LEFT},{b} {m},{mid} {r},{TOP}",
                b = c.baseline,
                m = LEFT + (WIDTH - LEFT - RIGHT) / 2,
                mid = TOP + (HEIGHT - TOP - BOTTOM) / 2,
                r = WIDTH - RIGHT
            )
        );
        assert_eq!(c.series[0].total, 15);
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let c = BarChart::new(
            "b",
            "t".into(),
            vec![
                ("a".into(), 10, "10".into()),
                ("b".into(), 5, "5".into()),
                ("c".into(), 0, "0".into()),
            ],
        );
        let span = WIDTH - BAR_LABEL_WIDTH - BAR_VALUE_WIDTH;
        assert_eq!(
            c.bars.iter().map(|b| b.length).collect::<Vec<_>>(),
            vec![span, span / 2, 0]
        );
        assert_eq!(c.bars[1].y - c.bars[0].y, BAR_ROW);
        assert_eq!(c.height, TOP * 2 + 3 * BAR_ROW);
    }
}
