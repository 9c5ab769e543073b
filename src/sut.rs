//! The system under test: what `verify` runs as its B phase (`--sut SPEC`).
//!
//! Today a spec names vnetbed's own VMM with a notify model:
//! - `vnetbed` — vnetbed's device on its own queue, `fenced`;
//! - `vnetbed:MODEL` — with notify model MODEL: `fenced`, `virtio-queue` (rust-vmm's
//!   `virtio-queue` crate runs the queues and makes every notification decision), or a buggy
//!   model (`unfenced`, `no-recheck`), which is expected to fail.
//!
//! The spec is parsed when the arguments are, so a bad one is a usage error before anything
//! starts.

use std::fmt;
use std::str::FromStr;

use vmm::devices::virtio::net::device::queue_backend_identity;
use vmm::devices::virtio::net::NotifyModel;

/// A parsed `--sut` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SutSpec {
    /// vnetbed's own VMM with this notify model.
    Vnetbed {
        /// The device's notify model (or the `virtio-queue` backend).
        model: NotifyModel,
    },
}

/// Why a `--sut` spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SutSpecError {
    /// The part before `:` is not a known kind of system under test.
    #[error(
        "unknown system under test `{0}`: use `vnetbed` or `vnetbed:MODEL` \
         (MODEL: fenced, virtio-queue, unfenced, no-recheck); other VMMs cannot be a system \
         under test yet"
    )]
    UnknownKind(String),
    /// The notify model after `vnetbed:` is unknown.
    #[error("in `--sut {spec}`: {reason}")]
    BadModel {
        /// The whole spec.
        spec: String,
        /// The notify model's parse error.
        reason: String,
    },
}

impl FromStr for SutSpec {
    type Err = SutSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, model) = match s.split_once(':') {
            Some((k, m)) => (k, Some(m)),
            None => (s, None),
        };
        if kind != "vnetbed" {
            return Err(SutSpecError::UnknownKind(kind.to_string()));
        }
        let model = match model {
            None => NotifyModel::Fenced,
            Some(m) => m.parse().map_err(
                |e: vmm::devices::virtio::net::notify_model::UnknownNotifyModel| {
                    SutSpecError::BadModel {
                        spec: s.to_string(),
                        reason: e.to_string(),
                    }
                },
            )?,
        };
        Ok(SutSpec::Vnetbed { model })
    }
}

impl fmt::Display for SutSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SutSpec::Vnetbed { model } => write!(f, "vnetbed:{model}"),
        }
    }
}

impl SutSpec {
    /// The notify model the VMM runs with.
    pub fn notify_model(&self) -> NotifyModel {
        match self {
            SutSpec::Vnetbed { model } => *model,
        }
    }

    /// What exactly runs: the queue implementation, with the `virtio-queue` crate's version
    /// and source when that is the backend.
    pub fn identity(&self) -> String {
        match self {
            SutSpec::Vnetbed { model } => format!("vnetbed ({})", queue_backend_identity(*model)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vnetbed_specs() {
        let fenced = SutSpec::Vnetbed {
            model: NotifyModel::Fenced,
        };
        assert_eq!("vnetbed".parse::<SutSpec>(), Ok(fenced));
        assert_eq!("vnetbed:fenced".parse::<SutSpec>(), Ok(fenced));
        let vq: SutSpec = "vnetbed:virtio-queue".parse().unwrap();
        assert_eq!(vq.notify_model(), NotifyModel::VirtioQueue);
        assert_eq!(vq.to_string(), "vnetbed:virtio-queue");
        assert!(
            vq.identity().starts_with("vnetbed (virtio-queue 0."),
            "{}",
            vq.identity()
        );
        assert_eq!(fenced.identity(), "vnetbed (vnetbed)");
        assert_eq!(
            "vnetbed:unfenced"
                .parse::<SutSpec>()
                .unwrap()
                .notify_model(),
            NotifyModel::Unfenced
        );
    }

    #[test]
    fn refuses_bad_specs_with_a_clear_message() {
        let e = "qemu".parse::<SutSpec>().unwrap_err();
        assert!(e.to_string().contains("use `vnetbed`"), "{e}");
        let e = "vnetbed:fast".parse::<SutSpec>().unwrap_err();
        assert!(matches!(e, SutSpecError::BadModel { .. }));
        assert!(e.to_string().contains("virtio-queue"), "{e}");
        assert!("".parse::<SutSpec>().is_err());
        assert!("vnetbed:".parse::<SutSpec>().is_err());
    }
}
