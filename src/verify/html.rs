//! verify's top-level `report.html`: the verdict and what was tested, A and B side by side,
//! the time-to-stall distribution, the exposure per race, and a link to each run's page.
//! Self-contained (inline CSS and SVG, no scripts) and XHTML-compatible, like the run pages.

use std::fmt::Write;

use super::summary::{b_dir_name, AStatus, RaceExposure, VerifySummary};
use crate::report::xml::escape;
use crate::report::REPORT_HTML;

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1040px;color:#222;padding:0 12px}
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:bold}
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#ef6c00}.skipped{background:#757575}
.reason{font-size:16px;margin:4px 0 14px}
table{border-collapse:collapse;margin:6px 0;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.caption{font-size:13px;color:#555;margin:0 0 10px}
";

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{s:.1} s"))
}

fn row(s: &mut String, cells: &[String]) {
    s.push_str("<tr>");
    for c in cells {
        let _ = write!(s, "<td>{c}</td>");
    }
    s.push_str("</tr>\n");
}

fn link(dir: &str) -> String {
    format!("<a href=\"{0}/{REPORT_HTML}\">{0}</a>", escape(dir))
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// Render the page.
pub fn render(v: &VerifySummary) -> String {
    let verdict = v.verdict.as_str();
    let mut s = String::from(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n",
    );
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        s,
        "<title>vnetbed verify: {}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        verdict.to_uppercase()
    );
    let _ = writeln!(
        s,
        "<h1>vnetbed verify {}</h1>\n<p class=\"reason\">{}</p>",
        badge(verdict, &verdict.to_uppercase()),
        escape(&v.reason)
    );

    s.push_str("<h2>What was tested</h2>\n<table>\n");
    let id = &v.identity;
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![
        ("vnetbed", id.vnetbed_version.clone()),
        (
            "revision",
            format!(
                "{}{}",
                dash(&id.revision),
                match id.dirty {
                    Some(true) => " (uncommitted changes)",
                    Some(false) => " (clean)",
                    None => "",
                }
            ),
        ),
        ("guest kernel", dash(&id.kernel)),
        ("guest kernel sha256", dash(&id.kernel_sha256)),
        ("control (A)", v.plan.control_spec()),
        ("system under test (B)", v.sut.clone()),
        ("system under test, exactly", dash(&id.sut)),
        (
            "plan",
            format!(
                "{} A runs of at most {:.0} s each; B at least {:.0} s and as long as A took",
                v.plan.runs, v.plan.timeout_s, v.plan.min_b_duration_s
            ),
        ),
    ];
    for (role, vmm) in [
        ("control VMM", &id.control_vmm),
        ("system under test VMM", &id.sut_vmm),
    ] {
        if let Some(vmm) = vmm {
            rows.push((
                role,
                format!(
                    "{} ({}, {}); sha256 {}; {}",
                    vmm.path.as_deref().unwrap_or("-"),
                    vmm.machine,
                    vmm.device,
                    vmm.sha256.as_deref().unwrap_or("-"),
                    vmm.version.as_deref().unwrap_or("-")
                ),
            ));
        }
    }
    if let Some(h) = &id.host {
        rows.push((
            "host",
            format!("{}, {} CPUs, kernel {}", h.cpu_model, h.nproc, h.kernel),
        ));
    }
    rows.extend(
        id.tools
            .iter()
            .map(|(k, t)| (k.as_str(), t.clone()))
            .collect::<Vec<_>>(),
    );
    for (k, val) in rows {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&val)
        );
    }
    s.push_str("</table>\n");

    side_by_side(&mut s, v);
    stall_distribution(&mut s, v);
    exposure(&mut s, v);

    s.push_str(
        "<h2>Every run</h2>\n<table>\n<tr><th>run</th><th>result</th><th>detail</th></tr>\n",
    );
    for r in &v.a_runs {
        let (class, text) = match r.status {
            AStatus::Stalled => ("pass", "expected to stall: stalled"),
            AStatus::NoStall => ("fail", "expected to stall: no stall"),
            AStatus::Unjudged => ("error", "not judged"),
            AStatus::NotRun => ("skipped", "not run"),
        };
        let detail = r.signature.clone().or(r.detail.clone()).unwrap_or_default();
        let dir = if r.status == AStatus::NotRun {
            escape(&r.dir)
        } else {
            link(&r.dir)
        };
        row(&mut s, &[dir, badge(class, text), escape(&detail)]);
    }
    match &v.b {
        Some(b) => row(
            &mut s,
            &[
                link(&b.dir),
                badge(b.verdict.as_str(), b.verdict.as_str()),
                escape(
                    b.unjudged
                        .as_deref()
                        .unwrap_or("the system under test: no stall allowed"),
                ),
            ],
        ),
        None => row(
            &mut s,
            &[
                escape(&b_dir_name(&v.sut)),
                badge("skipped", "not run"),
                String::new(),
            ],
        ),
    }
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"caption\">Generated by {} from the run directories; verify.json has the same in JSON.</p>\n</body>\n</html>",
        escape(&v.generated_by)
    );
    s
}

fn side_by_side(s: &mut String, v: &VerifySummary) {
    s.push_str("<h2>A and B side by side</h2>\n<table>\n<tr><th></th><th>A: control runs</th><th>B: the fix</th></tr>\n");
    let a_secs: f64 = v.a_runs.iter().filter_map(|r| r.duration_s).sum();
    let a_cycles: u64 = v.a_runs.iter().filter_map(|r| r.exposure_cycles).sum();
    let a_decisions: u64 = v
        .a_runs
        .iter()
        .filter_map(|r| r.rx_interrupt_decisions)
        .sum();
    let stalled = v.a_runs.iter().filter(|r| r.stalled).count();
    let b = v.b.as_ref();
    let rows = [
        (
            "notify model",
            v.buggy_model.clone(),
            b.map_or("-".into(), |_| v.sut.clone()),
        ),
        (
            "runs",
            format!("{} planned, {stalled} stalled", v.plan.runs),
            b.map_or("not run".into(), |b| b.verdict.as_str().to_string()),
        ),
        (
            "recorded",
            format!("{a_secs:.1} s in all"),
            b.map_or("-".into(), |b| {
                format!(
                    "{:.1} s (planned {})",
                    b.duration_s,
                    secs(b.planned_duration_s)
                )
            }),
        ),
        (
            "expected",
            "to stall, every run".into(),
            "no stall, every renewal received, lease kept, throughput above the floor".into(),
        ),
        (
            "lost-kick chances",
            a_cycles.to_string(),
            b.map_or("-".into(), |b| b.exposure_cycles.to_string()),
        ),
        (
            "lost-interrupt chances",
            a_decisions.to_string(),
            b.map_or("-".into(), |b| b.rx_interrupt_decisions.to_string()),
        ),
    ];
    for (k, a, b) in rows {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            escape(k),
            escape(&a),
            escape(&b)
        );
    }
    s.push_str("</table>\n");
    if let Some(b) = b.filter(|b| !b.queues.is_empty()) {
        s.push_str("<h3>B's chances per queue, as the device counted them</h3>\n<table>\n<tr><th>queue</th><th>lost-kick chances</th><th>per minute</th><th>interrupt decisions</th><th>per minute</th></tr>\n");
        let rate = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0}"));
        for q in &b.queues {
            let _ = writeln!(
                s,
                "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&q.queue),
                q.kick_chances,
                rate(q.kick_chances_per_minute),
                q.interrupt_decisions,
                rate(q.interrupt_decisions_per_minute)
            );
        }
        s.push_str("</table>\n");
    }
}

fn stall_distribution(s: &mut String, v: &VerifySummary) {
    let t = &v.time_to_stall_s;
    s.push_str("<h2>Time to stall</h2>\n");
    let _ = writeln!(
        s,
        "<p>Over {} stalled run(s): min {}, median {}, max {} (seconds from the start of each run's record, boot included).</p>",
        t.runs,
        secs(t.min),
        secs(t.p50),
        secs(t.max)
    );
    // A strip plot over 0..timeout: one dot per stalled run.
    let (w, h, pad) = (640.0_f64, 60.0_f64, 30.0_f64);
    let span = v.plan.timeout_s.max(t.max.unwrap_or(0.0)).max(1.0);
    let x = |sec: f64| pad + (w - 2.0 * pad) * sec / span;
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" data-plot=\"time_to_stall\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{pad}\" y1=\"30\" x2=\"{}\" y2=\"30\" stroke=\"#888\"/>",
        w - pad
    );
    for (label, at) in [("0 s".to_string(), 0.0), (format!("{span:.0} s"), span)] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"52\" text-anchor=\"middle\" font-size=\"12\">{label}</text>",
            x(at)
        );
    }
    for r in v.a_runs.iter().filter(|r| r.stalled) {
        if let Some(at) = r.time_to_stall_s {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"30\" r=\"6\" fill=\"#c62828\"><title>{}: {at:.1} s</title></circle>",
                x(at),
                escape(&r.dir)
            );
        }
    }
    s.push_str("</svg>\n");
}

fn exposure(s: &mut String, v: &VerifySummary) {
    s.push_str("<h2>Exposure of the fix, per race</h2>\n");
    let Some(b) = &v.b else {
        s.push_str("<p>B was not run.</p>\n");
        return;
    };
    s.push_str("<table>\n<tr><th>race</th><th>one chance is</th><th>chances in B</th><th>per minute</th><th>2012 rate (per s)</th><th>2012-style iperf hours</th></tr>\n");
    let race_row = |s: &mut String, name: &str, r: &RaceExposure| {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.4}</td></tr>",
            escape(name),
            escape(r.chance),
            r.count,
            r.per_minute.map_or("-".into(), |m| format!("{m:.0}")),
            r.per_second_2012,
            r.equivalent_2012_iperf_hours
        );
    };
    race_row(s, "lost kick", &b.races.lost_kick);
    race_row(s, "lost interrupt", &b.races.lost_interrupt);
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"caption\">Equivalent: {:.4} h of 2012-style iperf (the larger of the two). Assumption: {}.</p>",
        b.equivalent_2012_iperf_hours,
        escape(&b.assumption)
    );
}
