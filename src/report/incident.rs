//! The 2012 incident, told from a timeline: the seven steps the operators saw (docs story),
//! preceded by the stall that caused them, each with the time it happened in this run.

use serde::Serialize;

use super::analysis::{Analysis, RenewalOutcome};
use crate::record::{DhcpExchange, DhcpPhase};

/// One step of the incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 0 for the cause (the stall), then 1–7 as in the 2012 report.
    pub step: u8,
    /// What happens in this step.
    pub what: String,
    /// When it happened in this run (run-elapsed seconds); `null` when not observed.
    pub at: Option<f64>,
}

/// The steps, in order. Step 0 is the stall. Steps 1–6 are the first renewals after it that
/// failed, and the server's answers. Step 7 is the lease loss.
pub fn steps(a: &Analysis) -> Vec<Step> {
    let stall = a.first_stall();
    let after = stall.map_or(f64::INFINITY, |s| s.stalled_since);
    let failed = |phase: DhcpPhase| -> Vec<&DhcpExchange> {
        a.dhcp
            .iter()
            .filter(|d| d.phase == phase && d.at >= after && RenewalOutcome::of(d).failed())
            .collect()
    };
    let renews = failed(DhcpPhase::Renew);
    let rebinds = failed(DhcpPhase::Rebind);
    // When the server's answer was seen (records without `replied_at`: the request's time).
    let answered_at = |d: Option<&&DhcpExchange>| {
        d.filter(|d| d.reply.is_some())
            .map(|d| d.replied_at.unwrap_or(d.at))
    };
    let step = |step: u8, what: &str, at: Option<f64>| Step {
        step,
        what: what.to_string(),
        at,
    };
    vec![
        Step {
            step: 0,
            what: stall.map_or_else(
                || "the device stops delivering to the guest (no stall observed)".to_string(),
                |s| {
                    format!(
                        "the device stops delivering to the guest: {}",
                        s.signature()
                    )
                },
            ),
            at: stall.map(|s| s.stalled_since),
        },
        step(
            1,
            "the guest tries to renew its address (REQUEST, RENEWING)",
            renews.first().map(|d| d.at),
        ),
        step(
            2,
            "the server receives the renewal and answers",
            answered_at(renews.first()),
        ),
        step(
            3,
            "the guest ignores the answer and sends the renewal again",
            renews.get(1).map(|d| d.at),
        ),
        step(4, "the server answers again", answered_at(renews.get(1))),
        step(
            5,
            "getting no answer, the guest broadcasts its request (REBINDING)",
            rebinds.first().map(|d| d.at),
        ),
        step(
            6,
            "the server answers that too",
            answered_at(rebinds.first()),
        ),
        step(
            7,
            "the guest gives up its address and is gone from the network",
            a.lease_lost_at,
        ),
    ]
}

/// Steps 3 and 4 (a second renewal and its answer) depend on the client's retransmission
/// policy: RFC 2131 §4.4.5 lets a client wait half the time to T2, at least 60 s, before
/// retrying a renewal, so on the one-minute schedule a compliant client goes straight to
/// rebinding at T2 (2012's dhclient retried sooner). They are reported when seen but not
/// required.
pub const OPTIONAL_STEPS: [u8; 2] = [3, 4];

/// Whether the incident was reproduced: every step was observed except the optional ones.
pub fn reproduced(steps: &[Step]) -> bool {
    steps
        .iter()
        .filter(|s| !OPTIONAL_STEPS.contains(&s.step))
        .all(|s| s.at.is_some())
}

/// The steps as text, one per line, for a terminal.
pub fn render_text(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            let at =
                s.at.map_or_else(|| "     not seen".to_string(), |t| format!("{t:>10.1} s"));
            format!("{at}  {}. {}", s.step, s.what)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
