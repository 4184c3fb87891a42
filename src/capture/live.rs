//! Floor L1 (`capture`). Live capture through libpcap. The only module that imports the `pcap`
//! crate.
//!
//! Owns: opening an interface (promiscuous mode, snaplen, kernel buffer, read
//! timeout, BPF filter, nanosecond timestamps), turning quiet periods into
//! `Next::Idle` so flows can expire on a quiet link, and libpcap's drop counters.
//!
//! Why non-blocking reads plus `poll()`: with TPACKET_V3 (Linux, immediate mode
//! off) libpcap's read timeout only fires once a packet has arrived, so a blocking
//! read on a quiet link never returns (pcap(3PCAP) warns about this). The handle is
//! therefore non-blocking; when it has nothing buffered, `next` returns `Idle`, and
//! the following call waits in `poll()` for at most the read timeout.
use super::{CaptureError, InputReport, LiveCounters, Next, PacketSource, SourceReport};
use crate::packet::{linktype_name, LinkType, RawFrame};
use std::ffi::{c_int, c_void};
use std::os::unix::io::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

/// Options for opening an interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub iface: String,
    pub promisc: bool,
    pub snaplen: i32,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: i32,
    /// BPF filter expression, if any.
    pub filter: Option<String>,
    /// Read timeout: how often `next` returns `Idle` on a quiet link.
    pub timeout_ms: i32,
}

/// Re-read libpcap's counters after this many frames (one cheap syscall).
const STATS_EVERY: u32 = 4096;

/// `PCAP_TSTAMP_PRECISION_NANO` from pcap/pcap.h.
const PCAP_TSTAMP_PRECISION_NANO: c_int = 1;

extern "C" {
    // libpcap >= 1.5; the `pcap` crate links libpcap but does not wrap this one.
    fn pcap_get_tstamp_precision(p: *mut c_void) -> c_int;
}

/// A live interface opened with libpcap.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    iface: String,
    link: LinkType,
    /// Timestamps are in nanoseconds (the device accepted nanosecond precision).
    nano: bool,
    frames: u64,
    bytes: u64,
    since_stats: u32,
    /// Read libpcap's counters at the start of the next call (set when a call
    /// could not do it because the frame borrow was live).
    stats_due: bool,
    /// The last read found nothing buffered: wait in `poll()` before the next read.
    drained: bool,
    /// libpcap's selectable descriptor (owned by `cap`).
    fd: c_int,
    /// `poll()` timeout: the configured read timeout, or -1 (wait forever) if <= 0.
    poll_ms: c_int,
    last_stats: LiveCounters,
}

impl super::LiveOpen for LiveSource {
    fn open(cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
        LiveSource::open(cfg)
    }
    fn link_name(&self) -> &'static str {
        self.link.as_str()
    }
}

impl LiveSource {
    /// Open `cfg.iface` (`immediate_mode` off: packets come in buffer-sized batches
    /// or at the read timeout). Errors carry libpcap's own message.
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let live_err = |detail: String| CaptureError::Live {
            iface: cfg.iface.clone(),
            detail,
        };
        let inactive = |precision| {
            pcap::Capture::from_device(cfg.iface.as_str()).map(|c| {
                c.promisc(cfg.promisc)
                    .snaplen(cfg.snaplen)
                    .buffer_size(cfg.buffer_bytes)
                    .timeout(cfg.timeout_ms)
                    .immediate_mode(false)
                    .precision(precision)
            })
        };
        let cap = match inactive(pcap::Precision::Nano).and_then(|c| c.open()) {
            Ok(c) => c,
            // Some platforms refuse nanosecond stamps at activation: retry in micro.
            Err(first) => inactive(pcap::Precision::Micro)
                .and_then(|c| c.open())
                .map_err(|_| live_err(first.to_string()))?,
        };
        let mut cap = cap
            .setnonblock()
            .map_err(|e| live_err(format!("setting non-blocking mode: {e}")))?;
        // `precision()` ignores libpcap's refusal, so ask what is in effect.
        // SAFETY: `cap.as_ptr()` is the live, non-null pcap_t owned by `cap` for the
        // duration of the call; the function only reads a field of it.
        let nano = unsafe { pcap_get_tstamp_precision(cap.as_ptr().cast::<c_void>()) }
            == PCAP_TSTAMP_PRECISION_NANO;

        let raw = cap.get_datalink().0;
        let link = u32::try_from(raw)
            .ok()
            .and_then(LinkType::from_number)
            .ok_or_else(|| {
                live_err(format!(
                    "unsupported link type {}; zonewatch reads Ethernet, Linux SLL/SLL2, raw IPv4/IPv6 and BSD loopback",
                    linktype_name(raw as u32)
                ))
            })?;
        if let Some(f) = &cfg.filter {
            cap.filter(f, true)
                .map_err(|e| live_err(format!("filter {f:?}: {e}")))?;
        }
        let fd = cap.as_raw_fd();
        Ok(LiveSource {
            cap,
            drained: false,
            fd,
            poll_ms: if cfg.timeout_ms > 0 {
                cfg.timeout_ms
            } else {
                -1
            },
            iface: cfg.iface.clone(),
            link,
            nano,
            frames: 0,
            bytes: 0,
            since_stats: 0,
            stats_due: false,
            last_stats: LiveCounters::default(),
        })
    }

    /// The interface's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Read libpcap's counters now (and keep them for [`PacketSource::report`]).
    /// On failure the last good reading is returned.
    pub fn stats(&mut self) -> LiveCounters {
        if let Ok(s) = self.cap.stats() {
            self.last_stats = LiveCounters {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            };
        }
        self.stats_due = false;
        self.since_stats = 0;
        self.last_stats
    }

    /// Timestamps are nanosecond-precise (false: the device only gave microseconds).
    pub fn nanosecond_timestamps(&self) -> bool {
        self.nano
    }
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl PacketSource for LiveSource {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        if self.stats_due || self.since_stats >= STATS_EVERY {
            self.stats();
        }
        if self.drained {
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call; `fd` stays open
            // as long as `cap` lives. EINTR (Ctrl-C) or a timeout both give <= 0.
            let ready = unsafe { libc::poll(&mut pfd, 1, self.poll_ms) };
            if ready <= 0 {
                // Still drained: the next call waits again.
                self.stats_due = true;
                return Ok(Next::Idle {
                    now_ns: Some(wall_clock_ns()),
                });
            }
            self.drained = false;
        }
        // Only fields other than `cap` may be touched below while the packet is
        // borrowed (a conditional return of a borrow keeps `cap` borrowed).
        match self.cap.next_packet() {
            Ok(p) => {
                let sec = i128::from(p.header.ts.tv_sec);
                let frac = i128::from(p.header.ts.tv_usec);
                let ns = sec * 1_000_000_000 + if self.nano { frac } else { frac * 1_000 };
                let ts_ns = u64::try_from(ns.max(0)).unwrap_or(u64::MAX);
                self.frames += 1;
                self.bytes += p.data.len() as u64;
                self.since_stats += 1;
                Ok(Next::Frame(RawFrame {
                    ts_ns,
                    orig_len: p.header.len,
                    data: p.data,
                    link: self.link,
                    source: 0,
                }))
            }
            // Non-blocking: nothing buffered right now.
            Err(pcap::Error::TimeoutExpired) => {
                self.drained = true;
                Ok(Next::Idle {
                    now_ns: Some(wall_clock_ns()),
                })
            }
            Err(e) => {
                self.stats_due = true;
                Err(CaptureError::Live {
                    iface: self.iface.clone(),
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Counters as of the last refresh (every 4096 frames, every read timeout,
    /// [`LiveSource::stats`] or [`PacketSource::refresh_counters`]).
    fn report(&self) -> SourceReport {
        SourceReport {
            inputs: vec![InputReport {
                name: self.iface.clone(),
                label: self.iface.clone(),
                format: "live".to_string(),
                link_types: vec![self.link.as_str().to_string()],
                frames: self.frames,
                bytes: self.bytes,
                stopped_early: None,
                skipped: Default::default(),
                live: Some(self.last_stats),
            }],
        }
    }

    fn refresh_counters(&mut self) {
        self.stats();
    }

    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn nonexistent_interface_is_a_live_error_with_libpcaps_message() {
        let cfg = LiveConfig {
            iface: "zw-no-such-if0".to_string(),
            promisc: false,
            snaplen: 262_144,
            buffer_bytes: 1 << 20,
            filter: None,
            timeout_ms: 100,
        };
        match LiveSource::open(&cfg) {
            Ok(_) => panic!("opened a nonexistent interface"),
            Err(CaptureError::Live { iface, detail }) => {
                assert_eq!(iface, "zw-no-such-if0");
                assert!(!detail.is_empty());
                let shown = CaptureError::Live { iface, detail }.to_string();
                assert!(shown.starts_with("interface zw-no-such-if0: "), "{shown}");
            }
            Err(e) => panic!("wrong error: {e:?}"),
        }
    }
}
