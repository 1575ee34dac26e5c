//! The per-edge gauges of `GET /metrics` (`cdn_edge_up`, `cdn_router_edge_draining`,
//! `_overloaded`, `_utilization`), written from the live health view at scrape time rather than
//! kept in the metrics recorder, so they always list exactly the configured edges (an edge
//! removed by a reload disappears from the output at once).

use std::fmt::Write as _;

use cdn_geo::model::Health;

use crate::health::{EdgeHealth, HealthView};
use crate::metrics::names;

/// Append the per-edge gauges (`cdn_edge_up`, `cdn_router_edge_draining`,
/// `cdn_router_edge_overloaded`, `cdn_router_edge_utilization`: the router's view, named apart
/// from the edge's own `cdn_edge_draining`) for every edge in `view`, sorted by id, in the
/// Prometheus text format.
pub fn render_edge_gauges(view: &HealthView, out: &mut String) {
    let mut ids: Vec<&String> = view.edges.keys().collect();
    ids.sort();
    let gauges: [(&str, &str, EdgeValue); 4] = [
        (names::EDGE_UP, "1 when the edge is Up, else 0.", |e| {
            f64::from(u8::from(e.health == Health::Up))
        }),
        (
            names::EDGE_DRAINING,
            "1 when the edge takes no new answers (reported or manual drain).",
            |e| f64::from(u8::from(e.draining)),
        ),
        (
            names::EDGE_OVERLOADED,
            "1 when the edge's reported load is above its capacity.",
            |e| f64::from(u8::from(e.overloaded)),
        ),
        (
            names::EDGE_UTILIZATION,
            "The edge's last reported load / capacity (0 without a fresh report).",
            |e| e.utilization,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for id in &ids {
            let v = sample(value(&view.edges[*id]));
            let _ = writeln!(out, "{name}{{edge=\"{}\"}} {v}", escape_label(id));
        }
        out.push('\n');
    }
}

/// A sample value in the exposition format: `+Inf`, `-Inf`, `NaN` spelled as the format
/// spells them (Rust prints `inf`, which strict OpenMetrics parsers refuse).
fn sample(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// One per-edge gauge's value from the edge's state.
type EdgeValue = fn(&EdgeHealth) -> f64;

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_are_spelled_as_the_exposition_format_spells_them() {
        assert_eq!(sample(f64::INFINITY), "+Inf");
        assert_eq!(sample(f64::NEG_INFINITY), "-Inf");
        assert_eq!(sample(f64::NAN), "NaN");
        assert_eq!(sample(0.5), "0.5");
        assert_eq!(sample(1.0), "1");
    }

    #[test]
    fn edge_gauges_come_from_the_view() {
        let mut view = HealthView::default();
        let mut a = EdgeHealth::unknown(0);
        a.health = Health::Up;
        a.utilization = 0.25;
        let mut b = EdgeHealth::unknown(0);
        b.draining = true;
        b.overloaded = true;
        view.edges.insert("b".into(), b);
        view.edges.insert("a".into(), a);
        view.edges.insert("c\"x".into(), EdgeHealth::unknown(0));
        let mut out = String::new();
        render_edge_gauges(&view, &mut out);
        let up: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("cdn_edge_up{"))
            .collect();
        assert_eq!(
            up,
            [
                "cdn_edge_up{edge=\"a\"} 1",
                "cdn_edge_up{edge=\"b\"} 0",
                "cdn_edge_up{edge=\"c\\\"x\"} 0"
            ]
        );
        assert!(
            out.contains("# TYPE cdn_router_edge_draining gauge\n"),
            "{out}"
        );
        assert!(
            out.contains("cdn_router_edge_draining{edge=\"b\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cdn_router_edge_draining{edge=\"a\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("cdn_router_edge_overloaded{edge=\"b\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cdn_router_edge_utilization{edge=\"a\"} 0.25\n"),
            "{out}"
        );

        // An edge removed from the view is gone from the output.
        view.edges.remove("b");
        let mut out = String::new();
        render_edge_gauges(&view, &mut out);
        assert!(!out.contains("edge=\"b\""), "{out}");
        // No edges: the HELP/TYPE lines only.
        let mut out = String::new();
        render_edge_gauges(&HealthView::default(), &mut out);
        assert!(!out.contains("{edge="), "{out}");
    }
}
