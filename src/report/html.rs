//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched),
//! in XHTML-compatible markup so that any XML parser can check it.

use std::fmt::Write;

use super::analysis::{exposure_per_sample, Analysis, RenewalOutcome};
use super::checks::{format_bps, Check, CheckStatus, Verdict};
use super::svg::{Band, Dot, Line, Marker, Plot};
use super::xml::escape;
use crate::record::{DhcpPhase, LeaseState, TimelineSummary as Timeline};

/// At most this many lost-ping crosses are drawn; beyond it they are grouped by time.
const MAX_LOSS_MARKS: usize = 500;

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1040px;color:#222;padding:0 12px}
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:bold}
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#ef6c00}.skipped{background:#757575}
.reason{font-size:16px;margin:4px 0 14px}
table{border-collapse:collapse;margin:6px 0;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #e2e2e2;padding:8px;overflow-x:auto;font-size:12.5px;white-space:pre-wrap;margin:4px 0}
svg.plot{display:block;margin:8px 0 4px;font-size:12px;font-family:inherit}
svg .plot-title{font-size:14px;font-weight:bold}svg .tick{fill:#555}svg .axis-label{fill:#333}
svg .marker-label{font-size:12px;font-weight:bold}
.caption{font-size:13px;color:#555;margin:0 0 10px}
";

/// Render the page.
pub fn render(timeline: &Timeline, a: &Analysis, checks: &[Check], verdict: Verdict) -> String {
    let h = &timeline.header;
    let sub = h.command.get(1).map_or("run", String::as_str);
    let mut s = String::new();
    s.push_str(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n",
    );
    s.push_str("<meta charset=\"utf-8\"/>\n");
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        s,
        "<title>vnetbed {} {}: {}</title>",
        escape(sub),
        escape(&h.started_at),
        verdict.as_str().to_uppercase()
    );
    let _ = writeln!(s, "<style>{CSS}</style>\n</head>\n<body>");
    let phase = match (&h.config.phase, h.config.expect_stall) {
        (Some(p), true) => format!(" {p} (control run, expected to stall)"),
        (Some(p), false) => format!(" {p}"),
        (None, _) => String::new(),
    };
    let _ = writeln!(
        s,
        "<h1>vnetbed {}{} <span class=\"badge {}\">{}</span></h1>",
        escape(sub),
        escape(&phase),
        verdict.as_str(),
        verdict.as_str().to_uppercase()
    );
    let reason = checks
        .iter()
        .find(|c| c.status == CheckStatus::Fail)
        .or_else(|| checks.iter().find(|c| c.status == CheckStatus::Error))
        .map_or_else(
            // A control run says what it was for: "expected to stall: stalled at ...".
            || {
                checks
                    .iter()
                    .find(|c| c.name == super::checks::names::STALLED_AS_EXPECTED)
                    .map_or_else(|| "every check passed".to_string(), |c| c.message.clone())
            },
            |c| format!("{}: {}", c.name, c.message),
        );
    let _ = writeln!(s, "<p class=\"reason\">{}</p>", escape(&reason));

    run_table(&mut s, timeline, a);
    checks_table(&mut s, checks);
    if let Some(stall) = a.first_stall() {
        s.push_str("<h2>First stall</h2>\n");
        let _ = writeln!(s, "<pre>{}</pre>", escape(&stall.signature()));
        let rows = [
            ("detected at", format!("{:.3} s", stall.detected_at)),
            ("stalled since", format!("{:.3} s", stall.stalled_since)),
            (
                "last kick",
                stall
                    .last_kick_at
                    .map_or("never".into(), |t| format!("{t:.3} s")),
            ),
            (
                "last interrupt",
                stall
                    .last_interrupt_at
                    .map_or("never".into(), |t| format!("{t:.3} s")),
            ),
            ("stalls in total", a.stalls.len().to_string()),
        ];
        key_value_table(&mut s, &rows);
    }
    if a.first_stall().is_some() {
        incident_table(&mut s, a);
    }
    stats_table(&mut s, a);
    resources_table(&mut s, a);

    s.push_str("<h2>Plots</h2>\n");
    let markers = markers(a);
    for (plot, caption) in plots(timeline, a, &markers) {
        s.push_str(&plot.render());
        let _ = writeln!(s, "<p class=\"caption\">{}</p>", escape(caption));
    }

    if !a.notes.is_empty() {
        s.push_str("<h2>Notes</h2>\n<table>\n<tr><th>at</th><th>note</th></tr>\n");
        for n in &a.notes {
            let _ = writeln!(
                s,
                "<tr><td class=\"num\">{:.1} s</td><td>{}</td></tr>",
                n.at,
                escape(&n.text)
            );
        }
        s.push_str("</table>\n");
    }
    if !a.backend.is_empty() {
        s.push_str(
            "<h2>vhost-user backend</h2>\n<p>The backend went away and came back: reported, \
             not a stall (the device's watchdog is suspended while it is away).</p>\n<table>\n\
             <tr><th>at</th><th>state</th><th>downtime</th><th>message</th></tr>\n",
        );
        for b in &a.backend {
            let _ = writeln!(
                s,
                "<tr><td class=\"num\">{:.1} s</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                b.at,
                escape(&format!("{:?}", b.state).to_lowercase()),
                b.downtime_ms.map_or("-".to_string(), |d| format!("{d} ms")),
                escape(&b.message)
            );
        }
        s.push_str("</table>\n");
    }
    if let Some(exit) = a.vmm_exit() {
        if !exit.last_events.is_empty() {
            s.push_str("<h2>The VMM's last events</h2>\n<pre>");
            for e in &exit.last_events {
                let _ = writeln!(s, "{}", escape(&e.to_string()));
            }
            s.push_str("</pre>\n");
        }
    }
    if !timeline.warnings.is_empty() {
        s.push_str("<h2>Record warnings</h2>\n<pre>");
        for w in &timeline.warnings {
            let _ = writeln!(s, "{}", escape(w));
        }
        s.push_str("</pre>\n");
    }
    let _ = writeln!(
        s,
        "<p class=\"caption\">Generated by vnetbed {} from timeline.jsonl ({} records).</p>",
        escape(env!("CARGO_PKG_VERSION")),
        timeline.records
    );
    s.push_str("</body>\n</html>\n");
    s
}

/// Each process's memory, descriptors and CPU time after the warm-up (`resources_flat`).
fn resources_table(s: &mut String, a: &Analysis) {
    if a.resources.is_empty() {
        return;
    }
    s.push_str("<h2>Resources after the warm-up</h2>\n<table>\n<tr><th>process</th><th>pid</th><th>RSS first → last</th><th>RSS growth (bound)</th><th>fds first → last</th><th>CPU time</th><th>readings</th></tr>\n");
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    for t in &a.resources {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} → {}</td><td class=\"num\">{} ({})</td><td class=\"num\">{} → {}</td><td class=\"num\">{:.1} s</td><td class=\"num\">{}</td></tr>",
            escape(&t.process),
            t.pid,
            mib(t.rss_kib_first),
            mib(t.rss_kib_last),
            mib(t.rss_growth_kib),
            mib(t.rss_bound_kib()),
            t.fds_first,
            t.fds_last,
            t.cpu_s,
            t.samples
        );
    }
    s.push_str("</table>\n");
}

/// The size-bounded logs in words: `serial.log 1.2 MB written, 1.2 MB kept (0 rotations)`.
fn logs_line(a: &Analysis) -> String {
    let logs = a.end.as_ref().map_or(&[][..], |e| e.logs.as_slice());
    if logs.is_empty() {
        return "-".into();
    }
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    logs.iter()
        .map(|l| {
            format!(
                "{} {} written, {} kept ({} rotation{})",
                l.file,
                mb(l.written_bytes),
                mb(l.kept_bytes),
                l.rotations,
                if l.rotations == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn key_value_table(s: &mut String, rows: &[(&str, String)]) {
    s.push_str("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    s.push_str("</table>\n");
}

fn run_table(s: &mut String, timeline: &Timeline, a: &Analysis) {
    let h = &timeline.header;
    let c = &h.config;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    s.push_str("<h2>Run</h2>\n");
    let rows = [
        ("command", h.command.join(" ")),
        ("started", h.started_at.clone()),
        (
            "recorded",
            format!("{:.1} s ({} samples)", a.duration_s, a.seconds.len()),
        ),
        (
            "planned",
            c.duration_s.map_or("-".into(), |d| format!("{d:.0} s")),
        ),
        ("guest", c.guest.clone()),
        ("notify model", c.notify_model.clone()),
        ("queue backend", or_dash(&c.queue_backend)),
        ("race window", or_dash(&c.race_window)),
        ("load", format!("{} at {}", c.load, or_dash(&c.rate))),
        ("shaping", c.shaping.describe()),
        (
            "throughput floor",
            c.throughput_floor_bps.map_or("-".into(), format_bps),
        ),
        (
            "host",
            format!("{}, {} × {}", h.host.kernel, h.host.nproc, h.host.cpu_model),
        ),
        ("vnetbed", h.vnetbed_version.clone()),
        ("logs", logs_line(a)),
    ];
    key_value_table(s, &rows);
}

fn checks_table(s: &mut String, checks: &[Check]) {
    s.push_str("<h2>Checks</h2>\n<table>\n<tr><th>check</th><th>result</th><th>why</th></tr>\n");
    for c in checks {
        let status = match c.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Error => "error",
            CheckStatus::Skipped => "skipped",
        };
        let details = if c.details.is_empty() {
            String::new()
        } else {
            format!("<pre>{}</pre>", escape(&c.details))
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td><span class=\"badge {status}\">{status}</span></td><td>{}{details}</td></tr>",
            escape(c.name),
            escape(&c.message)
        );
    }
    s.push_str("</table>\n");
}

fn incident_table(s: &mut String, a: &Analysis) {
    let steps = super::incident::steps(a);
    s.push_str("<h2>The 2012 incident, step by step</h2>\n<table>\n<tr><th>step</th><th>at</th><th>what</th></tr>\n");
    for st in &steps {
        let at = st
            .at
            .map_or_else(|| "not seen".to_string(), |t| format!("{t:.1} s"));
        let _ = writeln!(
            s,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{at}</td><td>{}</td></tr>",
            st.step,
            escape(&st.what)
        );
    }
    s.push_str("</table>\n");
    let verdict = if super::incident::reproduced(&steps) {
        "Every step was observed: the run reproduced the incident."
    } else {
        "Not every step was observed in this run."
    };
    let _ = writeln!(s, "<p class=\"caption\">{verdict}</p>");
}

fn stats_table(s: &mut String, a: &Analysis) {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    let bps = |v: f64| format_bps(v);
    let ms = |v: f64| format!("{v:.3} ms");
    let r = &a.renewals;
    let t = &a.throughput;
    let rows = [
        (
            "renewals",
            format!(
                "{} attempted, {} answered, {} received, {} failed, {} unresolved",
                r.attempted, r.answered, r.received, r.failed, r.unresolved
            ),
        ),
        (
            "lease lost",
            opt(a.lease_lost_at, &|v| format!("at {v:.1} s")),
        ),
        (
            "throughput host → guest",
            format!(
                "p50 {}, p99 {} ({} s)",
                opt(t.to_guest.p50, &bps),
                opt(t.to_guest.p99, &bps),
                t.to_guest.samples
            ),
        ),
        (
            "throughput guest → host",
            format!(
                "p50 {}, p99 {} ({} s)",
                opt(t.from_guest.p50, &bps),
                opt(t.from_guest.p99, &bps),
                t.from_guest.samples
            ),
        ),
        (
            "ping",
            format!(
                "{} sent, {} lost ({}), RTT p50 {}, p99 {}",
                a.ping.sent,
                a.ping.lost,
                opt(a.ping.loss_ratio, &|v| format!("{:.1} %", v * 100.0)),
                opt(a.ping.rtt_ms.p50, &ms),
                opt(a.ping.rtt_ms.p99, &ms)
            ),
        ),
        if device_counted(a) {
            (
                "exposure, counted by the device",
                a.exposure
                    .queues
                    .iter()
                    .map(|q| {
                        format!(
                            "{}: {} lost-kick chances (ring-empty → notify-enable cycles, {} per minute), \
                             {} interrupt decisions ({} per minute)",
                            q.queue,
                            q.kick_chances,
                            opt(q.kick_chances_per_minute, &|v| format!("{v:.0}")),
                            q.interrupt_decisions,
                            opt(q.interrupt_decisions_per_minute, &|v| format!("{v:.0}"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        } else {
            (
                "exposure, counted by the guest",
                format!(
                    "{} rx ring-empty refills (lost-kick chances), {} rx callback re-enables \
                     (lost-interrupt chances)",
                    a.guest_exposure.ring_empty_refills, a.guest_exposure.rx_cb_enables
                ),
            )
        },
        (
            "VMM exit",
            a.vmm_exit().map_or("-".to_string(), |e| {
                format!(
                    "at {:.1} s: {}{}{}",
                    e.at,
                    e.cause,
                    e.status
                        .map(|c| format!(", status {c}"))
                        .unwrap_or_default(),
                    e.signal
                        .map(|c| format!(", signal {c}"))
                        .unwrap_or_default()
                )
            }),
        ),
    ];
    s.push_str("<h2>Statistics</h2>\n");
    key_value_table(s, &rows);
}

/// Stall, lease-loss and unexpected-exit markers, drawn on every plot.
fn markers(a: &Analysis) -> Vec<Marker> {
    let mut m: Vec<Marker> = a
        .stalls
        .iter()
        .map(|st| Marker {
            x: st.detected_at,
            label: format!(
                "stall: {} on {} at {:.1} s",
                st.kind.as_str(),
                st.queue,
                st.detected_at
            ),
            title: format!(
                "stall detected at {:.3} s, stalled since {:.3} s: {}",
                st.detected_at,
                st.stalled_since,
                st.signature()
            ),
            color: "#c62828",
        })
        .collect();
    if let Some(at) = a.lease_lost_at {
        m.push(Marker {
            x: at,
            label: format!("lease lost at {at:.1} s"),
            title: format!("the guest lost its DHCP lease at {at:.1} s"),
            color: "#6a1b9a",
        });
    }
    for e in a.vmm_exits.iter().filter(|e| !e.expected) {
        m.push(Marker {
            x: e.at,
            label: format!("VMM exit: {}", e.cause),
            title: format!("the VMM exited at {:.1} s: {}", e.at, e.cause),
            color: "#000",
        });
    }
    m
}

fn plots(timeline: &Timeline, a: &Analysis, markers: &[Marker]) -> Vec<(Plot, &'static str)> {
    let x_max = a.duration_s.max(1.0);
    vec![
        (throughput_plot(timeline, a, x_max, markers), "iperf3 throughput per second in each direction; dashed lines mark stalls and their consequences (hover for the signature)."),
        (ping_plot(a, x_max, markers), "Ping round-trip time each second; red crosses are pings without a reply."),
        (dhcp_plot(a, x_max, markers), "Lease state of the guest, and every DHCP exchange: renewals answered and received (green), failed (red cross), undecided (grey)."),
        if device_counted(a) {
            (exposure_plot(a, x_max, markers), "rx ring-empty → notification-enable cycles per second: each one is a chance for the lost-kick race.")
        } else {
            (guest_exposure_plot(a, x_max, markers), "Counted by the guest's driver (the VMM's device is not vnetbed's): rx refills that found the ring empty (chances for the lost kick) and rx callback re-enables (chances for the lost interrupt), per second.")
        },
    ]
}

fn throughput_plot(timeline: &Timeline, a: &Analysis, x_max: f64, markers: &[Marker]) -> Plot {
    let series = |pick: fn(&crate::record::Throughput) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        a.seconds
            .iter()
            .map(|s| {
                (
                    s.elapsed,
                    s.throughput.as_ref().and_then(pick).map(|v| v / 1e6),
                )
            })
            .collect()
    };
    let mut lines = vec![
        Line {
            name: "host → guest".into(),
            color: "#1565c0",
            points: series(|t| t.to_guest_bps),
        },
        Line {
            name: "guest → host".into(),
            color: "#ef6c00",
            points: series(|t| t.from_guest_bps),
        },
    ];
    if let Some(floor) = timeline.header.config.throughput_floor_bps {
        lines.push(Line {
            name: "floor".into(),
            color: "#9e9e9e",
            points: vec![(0.0, Some(floor / 1e6)), (x_max, Some(floor / 1e6))],
        });
    }
    Plot {
        id: "throughput",
        title: "Throughput".into(),
        y_label: "Mbit/s".into(),
        height: 280.0,
        x_max,
        lines,
        markers: markers.to_vec(),
        ..Plot::default()
    }
}

fn ping_plot(a: &Analysis, x_max: f64, markers: &[Marker]) -> Plot {
    let rtt: Vec<(f64, Option<f64>)> = a
        .seconds
        .iter()
        .filter_map(|s| {
            s.ping
                .as_ref()
                .map(|p| (s.elapsed, if p.lost { None } else { p.rtt_ms }))
        })
        .collect();
    let rtt_max = rtt.iter().filter_map(|p| p.1).fold(0.0, f64::max);
    // Headroom above the highest RTT keeps the marker labels clear of the line.
    let y_max = if rtt_max > 0.0 {
        super::svg::nice_ceiling(rtt_max * 1.3)
    } else {
        1.0
    };
    let lost: Vec<f64> = a
        .seconds
        .iter()
        .filter(|s| s.ping.as_ref().is_some_and(|p| p.lost))
        .map(|s| s.elapsed)
        .collect();
    let dots = loss_marks(&lost, x_max)
        .into_iter()
        // Lost pings sit along the bottom: no round trip.
        .map(|(x, title)| Dot {
            x,
            y: y_max * 0.06,
            color: "#c62828",
            title,
            cross: true,
        })
        .collect();
    Plot {
        id: "ping",
        title: "Ping RTT and loss".into(),
        y_label: "RTT (ms)".into(),
        height: 240.0,
        x_max,
        y_max: Some(y_max),
        lines: vec![Line {
            name: "RTT".into(),
            color: "#2e7d32",
            points: rtt,
        }],
        dots,
        markers: markers.to_vec(),
        legend: vec![("#c62828", "lost".into())],
        ..Plot::default()
    }
}

/// One cross per lost ping, or, when there are many, one per time bucket with a count.
fn loss_marks(lost: &[f64], x_max: f64) -> Vec<(f64, String)> {
    if lost.len() <= MAX_LOSS_MARKS {
        return lost
            .iter()
            .map(|&t| (t, format!("ping lost at {t:.0} s")))
            .collect();
    }
    let width = x_max / MAX_LOSS_MARKS as f64;
    let mut out: Vec<(f64, f64, usize)> = Vec::new();
    for &t in lost {
        match out.last_mut() {
            Some((start, _, n)) if t - *start < width => *n += 1,
            _ => out.push((t, t, 1)),
        }
        if let Some(last) = out.last_mut() {
            last.1 = t;
        }
    }
    out.into_iter()
        .map(|(a, b, n)| (a, format!("{n} pings lost between {a:.0} s and {b:.0} s")))
        .collect()
}

const ROW_LEASE: f64 = 1.0;
const ROW_RENEWALS: f64 = 2.0;
const ROW_OTHER: f64 = 3.0;

fn dhcp_plot(a: &Analysis, x_max: f64, markers: &[Marker]) -> Plot {
    let mut bands = Vec::new();
    let mut run: Option<(f64, LeaseState)> = None;
    let close = |bands: &mut Vec<Band>, start: f64, end: f64, state: LeaseState| {
        bands.push(Band {
            x0: start,
            x1: end,
            y0: ROW_LEASE - 0.35,
            y1: ROW_LEASE + 0.35,
            color: lease_color(state),
            title: format!("{state:?} from {start:.0} s to {end:.0} s").to_lowercase(),
        });
    };
    for s in &a.seconds {
        let Some(state) = s.lease else { continue };
        match run {
            Some((_, current)) if current == state => {}
            Some((start, current)) => {
                close(&mut bands, start, s.elapsed, current);
                run = Some((s.elapsed, state));
            }
            None => run = Some((s.elapsed, state)),
        }
    }
    if let Some((start, state)) = run {
        close(&mut bands, start, a.duration_s.max(start + 1.0), state);
    }
    let dots = a
        .dhcp
        .iter()
        .map(|d| {
            let outcome = RenewalOutcome::of(d);
            let what = format!(
                "{:.1} s: {} ({:?}) xid {}: {}",
                d.at,
                d.message,
                d.phase,
                d.xid.as_deref().unwrap_or("?"),
                outcome.describe()
            );
            let (y, color, cross) = match (d.phase.is_renewal(), outcome) {
                (true, RenewalOutcome::Ok) => (ROW_RENEWALS, "#2e7d32", false),
                (true, RenewalOutcome::Unresolved) => (ROW_RENEWALS, "#9e9e9e", false),
                (true, _) => (ROW_RENEWALS, "#c62828", true),
                (false, _) if d.phase == DhcpPhase::Other => (ROW_OTHER, "#1565c0", false),
                (false, o) => (
                    ROW_OTHER,
                    if o.failed() { "#c62828" } else { "#1565c0" },
                    o.failed(),
                ),
            };
            Dot {
                x: d.at,
                y,
                color,
                title: what,
                cross,
            }
        })
        .collect();
    Plot {
        id: "dhcp",
        title: "DHCP: lease state and renewals".into(),
        y_label: "".into(),
        height: 220.0,
        x_max,
        y_max: Some(3.6),
        y_categories: vec![
            (ROW_LEASE, "lease".into()),
            (ROW_RENEWALS, "renewals".into()),
            (ROW_OTHER, "other".into()),
        ],
        bands,
        dots,
        markers: markers.to_vec(),
        legend: vec![
            ("#a5d6a7", "bound".into()),
            ("#fff59d", "renewing".into()),
            ("#ffcc80", "rebinding".into()),
            ("#ef9a9a", "no lease".into()),
            ("#2e7d32", "renewal ok".into()),
            ("#c62828", "failed".into()),
        ],
        ..Plot::default()
    }
}

fn lease_color(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Bound => "#a5d6a7",
        LeaseState::Renewing => "#fff59d",
        LeaseState::Rebinding => "#ffcc80",
        LeaseState::Init | LeaseState::Selecting | LeaseState::Requesting | LeaseState::Expired => {
            "#ef9a9a"
        }
    }
}

/// Whether vnetbed's device counted the exposure (else only the guest did).
fn device_counted(a: &Analysis) -> bool {
    a.seconds.iter().any(|s| s.exposure.is_some())
}

fn guest_exposure_plot(a: &Analysis, x_max: f64, markers: &[Marker]) -> Plot {
    let series = |pick: fn((u64, u64)) -> u64| -> Vec<(f64, Option<f64>)> {
        a.seconds
            .iter()
            .filter_map(|s| s.guest_exposure.map(|g| (s.elapsed, Some(pick(g) as f64))))
            .collect()
    };
    Plot {
        id: "exposure",
        title: "Exposure, counted by the guest".into(),
        y_label: "per second".into(),
        height: 220.0,
        x_max,
        lines: vec![
            Line {
                name: "rx callback re-enables/s".into(),
                color: "#6d4c41",
                points: series(|g| g.1),
            },
            Line {
                name: "rx ring-empty refills/s".into(),
                color: "#1e88e5",
                points: series(|g| g.0),
            },
        ],
        markers: markers.to_vec(),
        ..Plot::default()
    }
}

fn exposure_plot(a: &Analysis, x_max: f64, markers: &[Marker]) -> Plot {
    let points = exposure_per_sample(&a.seconds)
        .into_iter()
        .map(|(t, c)| (t, Some(c as f64)))
        .collect();
    Plot {
        id: "exposure",
        title: "Exposure: rx ring-empty → notification-enable cycles".into(),
        y_label: "cycles/s".into(),
        height: 220.0,
        x_max,
        lines: vec![Line {
            name: "cycles/s".into(),
            color: "#6d4c41",
            points,
        }],
        markers: markers.to_vec(),
        ..Plot::default()
    }
}
