//! The SVG charts of the report (plotters): one bar chart per workload.

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::path::Path;

use common::size_label;
use plotters::prelude::*;

// ----- charts ----------------------------------------------------------------------

pub(crate) fn color(name: &str) -> RGBColor {
    match name {
        "memory" => RGBColor(120, 120, 120),
        "lmdb" => RGBColor(31, 119, 180),
        "rocksdb" => RGBColor(214, 39, 40),
        "file" => RGBColor(44, 160, 44),
        "sqlite" => RGBColor(148, 103, 189),
        "compact JSON" => RGBColor(255, 127, 14),
        "postcard record" => RGBColor(188, 189, 34),
        n if n.starts_with("lmdb") => RGBColor(158, 202, 225),
        n if n.starts_with("rocksdb") => RGBColor(252, 146, 114),
        n if n.starts_with("file") => RGBColor(161, 217, 155),
        _ => RGBColor(200, 200, 200),
    }
}

/// A bar chart, one bar per (label, value); log scale for times.
pub(crate) fn bar_chart(
    path: &Path,
    title: &str,
    axis: &str,
    bars: &[(String, f64)],
    log: bool,
    fmt: &dyn Fn(f64) -> String,
) -> Res<()> {
    let bars: Vec<&(String, f64)> = bars
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars.iter().map(|b| b.1).fold(f64::MIN, f64::max);
    let min = bars.iter().map(|b| b.1).fold(f64::MAX, f64::min);
    let width = (160 + 95 * bars.len() as u32).max(560);
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len();
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    if log {
        let lo = min / 3.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d((0..n).into_segmented(), (lo..max * 3.0).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(axis)
            .y_label_formatter(&|v| fmt(*v))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), lo),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color(name).filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                fmt(*v),
                (SegmentValue::CenterOf(i), *v * 1.25),
                ("sans-serif", 12),
            )
        }))?;
    } else {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d((0..n).into_segmented(), 0.0..max * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(axis)
            .y_label_formatter(&|v| fmt(*v))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color(name).filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                fmt(*v),
                (SegmentValue::CenterOf(i), *v + max * 0.03),
                ("sans-serif", 12),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

impl Report {
    pub(crate) fn chart_for(&self, w: &Workload) -> Option<String> {
        if w.group.starts_with("codec") {
            return None;
        }
        let n = self.sizes.iter().rev().copied().find(|&n| {
            self.functions(w.group)
                .iter()
                .any(|f| self.get(w.group, f, n).is_some())
        })?;
        let bars: Vec<(String, f64)> = self
            .functions(w.group)
            .into_iter()
            .filter_map(|f| self.get(w.group, &f, n).map(|e| (f, e.median)))
            .collect();
        let file = format!("{}.svg", w.group.replace('.', "_"));
        let path = self.out.join("charts").join(&file);
        let title = format!(
            "{} - {} peers - median per operation (log scale)",
            w.group,
            size_label(n)
        );
        match bar_chart(&path, &title, "time per operation", &bars, true, &fmt_ns) {
            Ok(()) => Some(format!("charts/{file}")),
            Err(e) => {
                eprintln!("chart {file}: {e}");
                None
            }
        }
    }
}
