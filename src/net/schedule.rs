//! The lease schedule: the lease time asked of dnsmasq, the renewal (T1) and rebinding (T2)
//! times sent to clients, and dnsmasq's 120-second floor on the lease time.

use std::time::Duration;

use serde::Serialize;

use super::error::{NetError, Result};

/// dnsmasq raises any lease time below this to this ("leases of a minute or less confuse
/// some clients"): asked for `1m`, it sends lease-time 120 s.
pub const DNSMASQ_LEASE_FLOOR: Duration = Duration::from_secs(120);

/// The lease schedule of a testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaseSchedule {
    /// The lease time configured on the DHCP range (the OpenStack-style one minute).
    pub lease_secs: u64,
    /// Renewal time T1 (DHCP option 58) sent to clients.
    pub renew_secs: u64,
    /// Rebinding time T2 (DHCP option 59) sent to clients.
    pub rebind_secs: u64,
    /// The lease time clients actually receive: `max(lease, 120)`.
    pub effective_lease_secs: u64,
}

impl LeaseSchedule {
    /// Build a schedule. T1 defaults to half the configured lease and T2 to 7/8 of it
    /// (for `1m`: 30 s and 52 s, the one-minute schedule OpenStack's clients followed).
    pub fn new(lease: Duration, renew: Option<Duration>, rebind: Option<Duration>) -> Result<Self> {
        let lease_secs = lease.as_secs();
        if lease_secs == 0 {
            return Err(NetError::BadSchedule(
                "the lease time must be at least 1 s".into(),
            ));
        }
        let renew_secs = renew.map_or(lease_secs / 2, |d| d.as_secs());
        let rebind_secs = rebind.map_or(lease_secs * 7 / 8, |d| d.as_secs());
        let effective_lease_secs = lease_secs.max(DNSMASQ_LEASE_FLOOR.as_secs());
        if renew_secs == 0 || renew_secs >= rebind_secs || rebind_secs >= effective_lease_secs {
            return Err(NetError::BadSchedule(format!(
                "need 0 < renew-after ({renew_secs} s) < rebind-after ({rebind_secs} s) < \
                 lease time clients receive ({effective_lease_secs} s); adjust --renew-after / \
                 --rebind-after"
            )));
        }
        Ok(LeaseSchedule {
            lease_secs,
            renew_secs,
            rebind_secs,
            effective_lease_secs,
        })
    }

    /// Whether dnsmasq's 120 s floor raised the configured lease time.
    pub fn floor_applies(&self) -> bool {
        self.effective_lease_secs > self.lease_secs
    }

    /// A sentence for users about the floor.
    pub fn floor_note(&self) -> String {
        if self.floor_applies() {
            format!(
                "dnsmasq raises lease times below 120 s to 120 s: configured {} s, clients receive \
                 lease-time {} s; they renew at T1 = {} s and rebind at T2 = {} s, and a lease \
                 expires only after 120 s",
                self.lease_secs, self.effective_lease_secs, self.renew_secs, self.rebind_secs
            )
        } else {
            format!(
                "lease time {} s, T1 = {} s, T2 = {} s (above dnsmasq's 120 s floor)",
                self.lease_secs, self.renew_secs, self.rebind_secs
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_minute_schedule_is_30_52_with_the_120_floor() {
        let s = LeaseSchedule::new(Duration::from_secs(60), None, None).unwrap();
        assert_eq!((s.lease_secs, s.renew_secs, s.rebind_secs), (60, 30, 52));
        assert_eq!(s.effective_lease_secs, 120);
        assert!(s.floor_applies());
        assert!(s.floor_note().contains("120 s"));
    }

    #[test]
    fn overrides_and_bad_schedules() {
        let d = Duration::from_secs;
        let s = LeaseSchedule::new(d(60), Some(d(4)), Some(d(7))).unwrap();
        assert_eq!((s.renew_secs, s.rebind_secs), (4, 7));
        assert!(LeaseSchedule::new(d(60), Some(d(50)), Some(d(40))).is_err());
        assert!(LeaseSchedule::new(d(60), Some(d(10)), Some(d(120))).is_err());
        assert!(LeaseSchedule::new(d(0), None, None).is_err());
        let long = LeaseSchedule::new(d(3600), None, None).unwrap();
        assert!(!long.floor_applies());
    }
}
