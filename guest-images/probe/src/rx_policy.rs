//! How the probe's virtio-net driver feeds and reads its rx ring: the refill policy
//! (`probe.refill=`), the driver profile (`probe.profile=`) and the merging of a frame that
//! spans several buffers (MRG_RXBUF, `num_buffers > 1`). Pure logic, host-tested; the driver
//! (src/virtio_net.rs) applies it.

use core::fmt;

/// When the driver re-posts rx buffers, and how many (`probe.refill=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefillPolicy {
    /// `eager`: after every poll round, post every free buffer (today's Linux keeps the ring
    /// full the same way). The default.
    Eager,
    /// `half`: Linux 3.2's virtnet_poll: refill (every free buffer) only once fewer than half
    /// of the ring's buffers are posted.
    Half,
    /// `low`: refill only once fewer buffers are posted than one largest frame needs: the
    /// ring runs nearly dry before every refill (more ring-empty -> enable cycles).
    Low,
    /// `trickle:N`: post at most N buffers per pass, checking for a kick after each batch,
    /// and keep passing (no sleep) until every buffer is posted. With small rx buffers a
    /// frame's buffers then arrive in pieces while the device is short of them: the pattern
    /// of QEMU's 2024 mergeable-rx lost kick (fixed by QEMU f937309fbdbb).
    Trickle(u16),
}

impl RefillPolicy {
    /// How many of the `free` buffers to post now, with `posted` of the ring's `size` posted
    /// and `per_frame` buffers needed for the largest frame. Never leaves the device with fewer
    /// than `per_frame` buffers and nothing on the way, so no policy can deadlock the ring.
    pub fn to_post(self, posted: u16, free: u16, size: u16, per_frame: u16) -> u16 {
        let refill_below = match self {
            RefillPolicy::Eager | RefillPolicy::Trickle(_) => u16::MAX,
            RefillPolicy::Half => (size / 2).max(per_frame),
            RefillPolicy::Low => per_frame,
        };
        if posted >= refill_below {
            return 0;
        }
        match self {
            RefillPolicy::Trickle(batch) => free.min(batch.max(1)),
            _ => free,
        }
    }

    /// Whether buffers may stay unposted after a pass while the driver goes on polling
    /// (the main loop must then not sleep).
    pub fn trickles(self) -> bool {
        matches!(self, RefillPolicy::Trickle(_))
    }

    /// Parse `eager`, `half`, `low` or `trickle:N` (N in 1..=256).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "eager" => Some(RefillPolicy::Eager),
            "half" | "linux-3.2" => Some(RefillPolicy::Half),
            "low" => Some(RefillPolicy::Low),
            _ => {
                let batch: u16 = text.strip_prefix("trickle:")?.parse().ok()?;
                (1..=256)
                    .contains(&batch)
                    .then_some(RefillPolicy::Trickle(batch))
            }
        }
    }
}

impl fmt::Display for RefillPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefillPolicy::Eager => f.write_str("eager"),
            RefillPolicy::Half => f.write_str("half"),
            RefillPolicy::Low => f.write_str("low"),
            RefillPolicy::Trickle(n) => write!(f, "trickle:{n}"),
        }
    }
}

/// Which Linux the driver's notification handling follows (`probe.profile=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `modern` (default): `virtqueue_disable_cb` with EVENT_IDX writes `used_event = 0`
    /// (Linux since 2021, 8d622d21d248), besides the NO_INTERRUPT shadow; refill `eager`.
    Modern,
    /// `linux-3.2`: the 2012 guest: `disable_cb` sets only `avail->flags` NO_INTERRUPT (also
    /// with EVENT_IDX; used_event is left where it was) and the refill is `half`.
    Linux32,
}

impl Profile {
    /// The name used on the command line and in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Modern => "modern",
            Profile::Linux32 => "linux-3.2",
        }
    }

    /// The refill policy when `probe.refill=` is not given.
    pub fn default_refill(self) -> RefillPolicy {
        match self {
            Profile::Modern => RefillPolicy::Eager,
            Profile::Linux32 => RefillPolicy::Half,
        }
    }

    /// Parse `modern` or `linux-3.2`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "modern" => Some(Profile::Modern),
            "linux-3.2" => Some(Profile::Linux32),
            _ => None,
        }
    }
}

/// Buffers of `rx_buf` bytes that the largest frame (`max_frame` bytes plus the
/// `hdr_len`-byte virtio-net header) needs.
pub fn buffers_per_frame(rx_buf: usize, hdr_len: usize, max_frame: usize) -> u16 {
    let total = max_frame + hdr_len;
    u16::try_from(total.div_ceil(rx_buf.max(1))).unwrap_or(u16::MAX)
}

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeError {
    /// The first buffer is shorter than the virtio-net header.
    ShortHeader,
    /// `num_buffers` is 0.
    NoBuffers,
    /// A buffer the header announced was not there (Linux: "rx error: N buffers out of M
    /// missing").
    MissingBuffers,
    /// The merged frame is larger than the output.
    TooLong,
}

/// Assemble one frame as Linux's `receive_mergeable` does: the first buffer holds the
/// virtio-net header (`num_buffers` at byte 10 when `mergeable`), then data; each further
/// buffer is data only. Every buffer the header announces is consumed through `next`, even
/// after an error, so that the next frame starts at the right buffer. Returns the frame's
/// length in `out`.
pub fn merge_frame<'a>(
    first: &[u8],
    hdr_len: usize,
    mergeable: bool,
    mut next: impl FnMut() -> Option<&'a [u8]>,
    out: &mut [u8],
) -> Result<usize, MergeError> {
    if first.len() < hdr_len || (mergeable && hdr_len < 12) {
        return Err(MergeError::ShortHeader);
    }
    let num_buffers = if mergeable {
        u16::from_le_bytes([first[10], first[11]])
    } else {
        1
    };
    if num_buffers == 0 {
        return Err(MergeError::NoBuffers);
    }
    let mut len = 0;
    let mut result = Ok(());
    let mut append = |bytes: &[u8], len: &mut usize| -> Result<(), MergeError> {
        let end = *len + bytes.len();
        let dst = out.get_mut(*len..end).ok_or(MergeError::TooLong)?;
        dst.copy_from_slice(bytes);
        *len = end;
        Ok(())
    };
    if let Err(e) = append(&first[hdr_len..], &mut len) {
        result = Err(e);
    }
    for _ in 1..num_buffers {
        match next() {
            Some(bytes) => {
                if result.is_ok() {
                    result = append(bytes, &mut len);
                }
            }
            None => {
                result = Err(MergeError::MissingBuffers);
                break;
            }
        }
    }
    result.map(|()| len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_post_as_documented() {
        // 256-entry ring, 6 buffers per largest frame.
        let (size, per) = (256, 6);
        assert_eq!(RefillPolicy::Eager.to_post(250, 6, size, per), 6);
        assert_eq!(RefillPolicy::Half.to_post(128, 128, size, per), 0);
        assert_eq!(RefillPolicy::Half.to_post(127, 129, size, per), 129);
        assert_eq!(RefillPolicy::Low.to_post(6, 250, size, per), 0);
        assert_eq!(RefillPolicy::Low.to_post(5, 251, size, per), 251);
        assert_eq!(RefillPolicy::Trickle(2).to_post(0, 256, size, per), 2);
        assert_eq!(RefillPolicy::Trickle(2).to_post(200, 1, size, per), 1);
        assert_eq!(RefillPolicy::Eager.to_post(256, 0, size, per), 0);
        // A ring too small for half to cover a frame still refills below one frame.
        assert_eq!(RefillPolicy::Half.to_post(5, 3, 8, per), 3);
        assert!(RefillPolicy::Trickle(1).trickles() && !RefillPolicy::Half.trickles());
    }

    #[test]
    fn parses_and_names_policies_and_profiles() {
        for text in ["eager", "half", "low", "trickle:1", "trickle:256"] {
            let policy = RefillPolicy::parse(text).unwrap();
            assert_eq!(format!("{policy}"), text);
        }
        assert_eq!(RefillPolicy::parse("linux-3.2"), Some(RefillPolicy::Half));
        for bad in [
            "",
            "trickle",
            "trickle:0",
            "trickle:257",
            "trickle:x",
            "lazy",
        ] {
            assert_eq!(RefillPolicy::parse(bad), None, "{bad}");
        }
        assert_eq!(Profile::parse("linux-3.2"), Some(Profile::Linux32));
        assert_eq!(Profile::Linux32.default_refill(), RefillPolicy::Half);
        assert_eq!(Profile::parse("modern").unwrap().name(), "modern");
        assert_eq!(Profile::parse("3.2"), None);
    }

    #[test]
    fn a_1500_byte_frame_takes_six_256_byte_buffers() {
        assert_eq!(buffers_per_frame(256, 12, 1514), 6);
        assert_eq!(buffers_per_frame(1536, 12, 1514), 1);
        assert_eq!(buffers_per_frame(1024, 12, 1514), 2);
    }

    /// A frame as a device writes it over `buffers` buffers of `size` bytes.
    fn spread(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut bytes = vec![0u8; 12];
        bytes.extend_from_slice(frame);
        let chunks: Vec<Vec<u8>> = bytes.chunks(size).map(<[u8]>::to_vec).collect();
        let n = chunks.len() as u16;
        let mut chunks = chunks;
        chunks[0][10..12].copy_from_slice(&n.to_le_bytes());
        chunks
    }

    #[test]
    fn merges_a_frame_over_six_or_twelve_buffers_and_consumes_exactly_them() {
        // 256-byte buffers: 6 per full-size frame; 128-byte (verify's race profile on
        // QEMU): 12.
        for (size, count) in [(256, 6), (128, 12)] {
            assert_eq!(buffers_per_frame(size, 12, 1514), count);
            let frame: Vec<u8> = (0..1514u32).map(|i| i as u8).collect();
            let mut buffers = spread(&frame, size);
            assert_eq!(buffers.len(), count as usize);
            buffers.push(vec![0xee; 64]); // the next frame's first buffer: must stay unconsumed
            let mut rest = buffers[1..].iter();
            let mut out = [0u8; 1514];
            let len = merge_frame(
                &buffers[0],
                12,
                true,
                || rest.next().map(|b| &b[..]),
                &mut out,
            );
            assert_eq!(len, Ok(1514), "{size}-byte buffers");
            assert_eq!(&out[..], &frame[..]);
            assert_eq!(rest.len(), 1, "only the announced buffers are consumed");
        }
    }

    #[test]
    fn missing_or_oversized_merges_are_errors_that_still_consume_the_frame() {
        let frame = [7u8; 1000];
        let buffers = spread(&frame, 256);
        let mut rest = buffers[1..3].iter(); // two of the four further buffers are missing
        let mut out = [0u8; 1514];
        assert_eq!(
            merge_frame(
                &buffers[0],
                12,
                true,
                || rest.next().map(|b| &b[..]),
                &mut out
            ),
            Err(MergeError::MissingBuffers)
        );
        let mut rest = buffers[1..].iter();
        let mut small = [0u8; 600];
        assert_eq!(
            merge_frame(
                &buffers[0],
                12,
                true,
                || rest.next().map(|b| &b[..]),
                &mut small
            ),
            Err(MergeError::TooLong)
        );
        assert_eq!(
            rest.len(),
            0,
            "an oversized frame's buffers are all consumed"
        );
        let mut zero = buffers[0].clone();
        zero[10..12].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(
            merge_frame(&zero, 12, true, || None, &mut out),
            Err(MergeError::NoBuffers)
        );
        assert_eq!(
            merge_frame(&[0; 8], 12, true, || None, &mut out),
            Err(MergeError::ShortHeader)
        );
    }

    #[test]
    fn without_mrg_rxbuf_one_buffer_is_one_frame() {
        let mut first = vec![0u8; 10];
        first[..].fill(0);
        first.extend_from_slice(&[1, 2, 3]);
        let mut out = [0u8; 1514];
        let len = merge_frame(&first, 10, false, || panic!("no second buffer"), &mut out);
        assert_eq!(len, Ok(3));
        assert_eq!(&out[..3], &[1, 2, 3]);
    }
}
