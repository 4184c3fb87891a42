//! `zonewatch run` on a real interface: a veth pair between two network namespaces
//! created for the test (root only; CI runs as root). zonewatch captures on one
//! end while the other end sends a known, bounded set of packets.

use crate::util::{self, OutPaths, Watched};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace that exists for the guard's lifetime (`ip netns del` on drop,
/// which also removes the veth ends inside it).
pub struct Netns {
    pub name: String,
}

/// Two fresh namespaces joined by a veth pair with unique interface names,
/// both ends up and without addresses: the capture end `cap_if` in `cap`, the
/// sender end `snd_if` in `snd`. Tests add the addresses and routes they need.
/// The namespaces (and so the pair) are deleted on drop.
pub struct Veth {
    pub cap: Netns,
    pub snd: Netns,
    pub cap_if: String,
    pub snd_if: String,
}

impl Veth {
    /// `prefix` (≤ 4 characters) names the interfaces `PREFIXcTAG` / `PREFIXsTAG`.
    pub fn new(prefix: &str) -> Veth {
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (cap_if, snd_if) = (format!("{prefix}c{tag}"), format!("{prefix}s{tag}"));
        let cap = Netns::new();
        let snd = Netns::new();
        let mut c = Command::new("ip");
        c.args(["link", "add", "name", &cap_if, "netns", &cap.name])
            .args(["type", "veth", "peer", "name", &snd_if, "netns", &snd.name]);
        let r = util::run_cmd(c);
        assert_eq!(r.code(), 0, "{} failed: {}", r.cmdline, r.stderr);
        cap.run(&["ip", "link", "set", &cap_if, "up"]);
        snd.run(&["ip", "link", "set", &snd_if, "up"]);
        Veth {
            cap,
            snd,
            cap_if,
            snd_if,
        }
    }
}

/// Initiator (zone "a") and responder (zone "b") of the flows the routed
/// tests send over [`Veth::between_blocks`].
pub const AB_SRC: &str = "192.0.2.10";
pub const AB_DST: &str = "198.51.100.10";

/// Zones a and b and no allow rule: every a→b flow is a violation (high).
pub const AB_RULES: &str = r#"[[zone]]
id = "a"
cidrs = ["192.0.2.0/24"]

[[zone]]
id = "b"
cidrs = ["198.51.100.0/24"]

[severity]
default = "high"
"#;

impl Veth {
    /// [`Veth::new`], then two documentation blocks on one link: the capture
    /// end holds `cap_addr`/24 (in 198.51.100.0/24), the sender `snd_addr`/24
    /// (in 192.0.2.0/24), and each side routes the other's block onto it.
    pub fn between_blocks(prefix: &str, cap_addr: &str, snd_addr: &str) -> Veth {
        let v = Veth::new(prefix);
        v.cap.run(&[
            "ip",
            "addr",
            "add",
            &format!("{cap_addr}/24"),
            "dev",
            &v.cap_if,
        ]);
        v.snd.run(&[
            "ip",
            "addr",
            "add",
            &format!("{snd_addr}/24"),
            "dev",
            &v.snd_if,
        ]);
        v.cap
            .run(&["ip", "route", "add", "192.0.2.0/24", "dev", &v.cap_if]);
        v.snd
            .run(&["ip", "route", "add", "198.51.100.0/24", "dev", &v.snd_if]);
        v
    }
}

impl Netns {
    /// A new namespace with a unique name: zw-t-PID-N.
    pub fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "zw-t-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run a command inside the namespace; it must succeed.
    pub fn run(&self, argv: &[&str]) {
        let (program, args) = argv.split_first().expect("empty argv");
        let mut c = self.cmd(program);
        c.args(args);
        let r = util::run_cmd(c);
        assert_eq!(r.code(), 0, "{} failed: {}", r.cmdline, r.stderr);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let mut c = Command::new("ip");
    c.args(args);
    let r = util::run_cmd(c);
    assert_eq!(r.code(), 0, "{} failed: {}", r.cmdline, r.stderr);
}

/// Fail (not skip) when not root: creating namespaces and capturing needs it.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "the live-capture tests must run as root (they create network namespaces and capture on a veth); \
         run `sudo -E cargo test` or run the test binary as root"
    );
}

#[test]
fn live_capture_on_a_veth_counts_what_was_sent() {
    require_root();
    let cap = Netns::new();
    let snd = Netns::new();
    ip(&[
        "link", "add", "name", "zwcap", "netns", &cap.name, "type", "veth", "peer", "name",
        "zwsnd", "netns", &snd.name,
    ]);
    cap.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "zwcap"]);
    snd.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "zwsnd"]);
    cap.run(&["ip", "link", "set", "zwcap", "up"]);
    snd.run(&["ip", "link", "set", "zwsnd", "up"]);

    let out = OutPaths::new();
    let mut zw = cap.cmd(util::BIN);
    zw.args(["run", "-i", "zwcap", "-q", "-w", "2", "--summary"])
        .arg(&out.summary)
        .arg("--flows")
        .arg(&out.flows);
    let mut child = Watched::spawn(zw);
    // The capture is open once zonewatch says so (as tcpdump does).
    child.wait_stderr("listening on zwcap");

    // Known traffic: 5 echo requests (5 replies), 5 UDP datagrams to a closed port
    // (the kernel answers with ICMP port unreachable, up to its rate limit).
    snd.run(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "1",
        "192.0.2.1",
    ]);
    snd.run(&[
        "python3",
        "-c",
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for i in range(5):\n    s.sendto(b'zonewatch-live-%d' % i, ('192.0.2.1', 9999))\n",
    ]);

    // Every packet sent is in the capture buffer (ping waited for its
    // replies); a stop reads the buffer before it ends.
    util::send_signal(child.pid(), "TERM");
    let (status, stderr) = child.finish(util::WATCH_WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    let o = out.collect(util::Run {
        status,
        stdout: String::new(),
        stderr,
        cmdline: "zonewatch run".into(),
    });
    let s = &o.summary;
    assert_eq!(s["mode"], "live", "{s:#}\nstderr:\n{}", o.run.stderr);
    let packets = util::count(s, "", "packets");
    assert!(
        packets >= 15,
        "sent 10 ICMP + 5 UDP, zonewatch saw {packets} packets: {s:#}"
    );
    assert!(
        util::count(s, "transport", "icmp") >= 10,
        "echo request+reply x5: {s:#}"
    );
    assert!(
        util::count(s, "transport", "udp") >= 5,
        "5 UDP datagrams: {s:#}"
    );
    let live = &s["sources"][0]["live"];
    for key in ["received", "dropped", "if_dropped"] {
        assert!(live[key].is_u64(), "sources[0].live.{key} missing: {s:#}");
    }
    assert!(
        live["received"].as_u64() >= Some(15),
        "libpcap received: {s:#}"
    );
    assert!(s["drops"].is_object(), "{s:#}");

    assert!(
        o.flows_end_with_newline,
        "flows file does not end with a complete line"
    );
    let flows = util::parse_flows(&o.flows);
    let udp = flows
        .iter()
        .find(|f| f.get("dst_port").and_then(|p| p.as_u64()) == Some(9999))
        .unwrap_or_else(|| panic!("no flow to 192.0.2.1:9999 among {flows:?}"));
    assert_eq!(udp["src_ip"], "192.0.2.2", "{udp:?}");
    assert_eq!(udp["orig_pkts"], 5, "{udp:?}");
    let echo = flows
        .iter()
        .filter(|f| f["src_ip"] == "192.0.2.2" && f["dst_ip"] == "192.0.2.1")
        .map(|f| f["orig_pkts"].as_u64().unwrap_or(0) + f["resp_pkts"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(
        echo >= 15,
        "flows from 192.0.2.2 hold {echo} packets: {flows:?}"
    );
}

/// `run --interface KIND::IFACE` picks a live source from the registry
/// (`capture::LIVE_SOURCES`, as Zeek's `af_packet::eth0`); an unknown kind
/// is an error naming the known ones, before anything is opened.
#[test]
fn live_sources_are_chosen_by_a_kind_prefix() {
    require_root();
    let run = util::zonewatch(["run", "-i", "pcap::lo", "-q", "--duration-secs", "1"]);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("listening on pcap::lo, link-type "),
        "{}",
        run.stderr
    );
    let run = util::zonewatch(["run", "-i", "nosuch::lo", "-q", "--duration-secs", "1"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("interface lo: no live source \"nosuch\" (known: pcap)"),
        "{}",
        run.stderr
    );
}
