//! When a soak stops: a pure decision over what the loop knows, tested without KVM.

use std::time::Duration;

use super::guest_stall::CONFIRM_S;
use crate::record::LeaseState;

/// When a soak stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopWhen {
    /// After the planned duration.
    Duration,
    /// When the 2012 incident has fully unfolded (stall, failed renewals, lease lost), or the
    /// duration (the timeout) passes.
    IncidentComplete,
    /// At the first stall, or when the duration (the timeout) passes.
    FirstStall,
}

/// What the loop knows when it asks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct State {
    /// Time since the run's loop started.
    pub elapsed: Duration,
    /// SIGINT or SIGTERM arrived.
    pub signal: Option<i32>,
    /// The VMM process ended (or was killed as hung).
    pub vmm_ended: bool,
    /// The guest has had a lease.
    pub guest_bound: bool,
    /// Stalls recorded.
    pub stalls: usize,
    /// The guest's lease state.
    pub lease: Option<LeaseState>,
    /// Guest stall reports wait for the host's word.
    pub guest_reports_pending: bool,
}

/// Why a soak stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A signal asked it to.
    Signal(i32),
    /// The VMM ended.
    VmmEnded,
    /// The guest got no lease in time.
    NoLease,
    /// The planned duration (or the timeout) passed.
    Duration,
    /// The 2012 incident unfolded: a stall, then the lease lost.
    IncidentComplete,
    /// The first stall (verify's control runs).
    FirstStall,
}

/// The limits of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// What ends it early.
    pub stop_when: StopWhen,
    /// Its planned length (the timeout for reproduce and verify's control runs).
    pub duration: Duration,
    /// How long the guest may take to get its first lease.
    pub dhcp_timeout: Duration,
}

impl Policy {
    /// Whether to stop now, and why. A guest stall report still being watched when the time
    /// is up gets its watch first (a little over [`CONFIRM_S`]).
    pub fn decide(&self, s: &State) -> Option<Stop> {
        if let Some(sig) = s.signal {
            return Some(Stop::Signal(sig));
        }
        if s.vmm_ended {
            return Some(Stop::VmmEnded);
        }
        if !s.guest_bound && s.elapsed > self.dhcp_timeout {
            return Some(Stop::NoLease);
        }
        let watching = s.guest_reports_pending
            && s.elapsed < self.duration + Duration::from_secs_f64(CONFIRM_S + 2.0);
        if s.elapsed >= self.duration && !watching {
            return Some(Stop::Duration);
        }
        match self.stop_when {
            StopWhen::IncidentComplete if s.stalls > 0 && s.lease == Some(LeaseState::Expired) => {
                Some(Stop::IncidentComplete)
            }
            StopWhen::FirstStall if s.stalls > 0 => Some(Stop::FirstStall),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(stop_when: StopWhen) -> Policy {
        Policy {
            stop_when,
            duration: Duration::from_secs(60),
            dhcp_timeout: Duration::from_secs(20),
        }
    }

    fn at(secs: u64) -> State {
        State {
            elapsed: Duration::from_secs(secs),
            guest_bound: true,
            lease: Some(LeaseState::Bound),
            ..State::default()
        }
    }

    #[test]
    fn a_soak_runs_its_duration_and_not_a_second_less() {
        let p = policy(StopWhen::Duration);
        assert_eq!(p.decide(&at(59)), None);
        assert_eq!(p.decide(&at(60)), Some(Stop::Duration));
        // A stall does not end a soak.
        assert_eq!(
            p.decide(&State {
                stalls: 3,
                ..at(30)
            }),
            None
        );
    }

    #[test]
    fn signals_and_a_dead_vmm_come_first() {
        let p = policy(StopWhen::Duration);
        let s = State {
            signal: Some(15),
            vmm_ended: true,
            ..at(70)
        };
        assert_eq!(p.decide(&s), Some(Stop::Signal(15)));
        assert_eq!(
            p.decide(&State {
                vmm_ended: true,
                ..at(1)
            }),
            Some(Stop::VmmEnded)
        );
    }

    #[test]
    fn no_lease_in_time_ends_the_run() {
        let p = policy(StopWhen::Duration);
        let unbound = |secs| State {
            guest_bound: false,
            lease: None,
            ..at(secs)
        };
        assert_eq!(p.decide(&unbound(20)), None);
        assert_eq!(p.decide(&unbound(21)), Some(Stop::NoLease));
        assert_eq!(p.decide(&at(21)), None);
    }

    #[test]
    fn reproduce_stops_when_the_incident_is_complete_and_verify_at_the_first_stall() {
        let p = policy(StopWhen::IncidentComplete);
        let stalled = State {
            stalls: 1,
            ..at(10)
        };
        assert_eq!(p.decide(&stalled), None, "the lease is not lost yet");
        let lost = State {
            lease: Some(LeaseState::Expired),
            ..stalled
        };
        assert_eq!(p.decide(&lost), Some(Stop::IncidentComplete));
        // Expired without a stall is not the incident.
        let expired = State {
            lease: Some(LeaseState::Expired),
            ..at(10)
        };
        assert_eq!(p.decide(&expired), None);
        let p = policy(StopWhen::FirstStall);
        assert_eq!(p.decide(&at(10)), None);
        assert_eq!(p.decide(&stalled), Some(Stop::FirstStall));
    }

    #[test]
    fn a_guest_report_being_watched_gets_its_watch_past_the_duration() {
        let p = policy(StopWhen::FirstStall);
        let watching = |secs| State {
            guest_reports_pending: true,
            ..at(secs)
        };
        assert_eq!(p.decide(&watching(60)), None);
        assert_eq!(p.decide(&watching(63)), None);
        assert_eq!(p.decide(&watching(64)), Some(Stop::Duration));
    }
}
