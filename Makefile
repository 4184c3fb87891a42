# zonewatch — two commands on a fresh Debian machine with Rust:
#   make run    installs what is missing, builds release, replays the bundled sample
#   make test   installs what is missing, runs every test
SHELL := /bin/bash
CARGO ?= cargo
SAMPLE ?= captures/zones.pcap

# System packages, one reason each:
#   libpcap-dev      live capture (pcap crate links libpcap)
#   pkg-config       lets the pcap crate find libpcap
#   tshark           tests compare counts and Community IDs with Wireshark's dissectors
#   tcpdump          throughput baseline in benches; records the sample capture
#   iproute2         tests create network namespaces and veth pairs
#   iputils-ping curl netcat-openbsd python3   real traffic in recorded captures and live tests
#   tcpreplay        tcprewrite adds VLAN tags to captures; overload tests
#   hyperfine time   whole-process benchmarks (median of runs, peak RSS)
#   nmap hping3 hydra openssh-server   real scans, floods and brute force in the attack captures
#   prometheus       promtool checks the scrape config and tests the alerting rules (grafana/check.sh)
#   rsyslog          validates and runs the alert-shipping example (grafana/shipping/rsyslog-zonewatch.conf)
#   python3-yaml     grafana/check.sh reads the Grafana provisioning and Prometheus YAML
#   logrotate        tests run dist/logrotate.d/zonewatch against a running sensor
#   systemd          systemd-analyze verify checks dist/zonewatch.service (tests/privilege.rs)
DEB_PKGS := libpcap-dev pkg-config tshark tcpdump iproute2 iputils-ping curl netcat-openbsd \
            python3 tcpreplay hyperfine time nmap hping3 hydra openssh-server prometheus rsyslog \
            python3-yaml systemd logrotate
# Only for re-recording captures/office-noise.pcap (`make captures`), one reason each:
#   dnsmasq-base isc-dhcp-client   a real DHCPv4/DHCPv6/RA server and client
#   avahi-daemon                   real mDNS announcements and IGMP joins
#   samba-common-bin               nmblookup: a NetBIOS name query to the directed broadcast
# and for captures/model-*.pcap (record-models.sh), real clients of the planted flows:
#   ntpsec-ntpdig                  NTP queries (ntpdig)
#   bind9-dnsutils                 DNS queries (dig), answered by dnsmasq
#   smbclient                      SMB sessions to tcp/445
CAPTURE_PKGS := dnsmasq-base isc-dhcp-client avahi-daemon samba-common-bin ntpsec-ntpdig \
                bind9-dnsutils smbclient

.PHONY: all deps capture-deps install-pkgs build run test lint msrv advisories bench bench-flood bench-live criterion captures fuzz clean grafana-check

all: build

# Install only what is missing; apt-get update once, only if something is.
deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PKGS)"

capture-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PKGS) $(CAPTURE_PKGS)"

install-pkgs:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The product is one binary; zonewatch-gen (the benchmark capture generator,
# tools/zonewatch-gen) is a dev tool in the workspace but not a default member: built by
# `make bench`, `make bench-flood`, `make bench-live` and the integration tests, not shipped.
build: deps
	$(CARGO) build --release -p zonewatch

run: build
	./target/release/zonewatch replay --rules rules/example-site.toml --alerts - $(SAMPLE)
	@echo
	@echo "Metrics: a live sensor (zonewatch run -i IFACE ...) serves http://127.0.0.1:9464/metrics (--metrics-listen IP:PORT to change); a replay serves them with --metrics-listen ADDR --hold."
	@echo "Prometheus: add each sensor's ADDR as a target with its sensor label in grafana/prometheus/prometheus.yml (loads grafana/prometheus/rules/), then: prometheus --config.file=grafana/prometheus/prometheus.yml"
	@echo "Grafana: copy grafana/provisioning/datasources/prometheus.yaml and grafana/provisioning/dashboards/zonewatch.yaml into /etc/grafana/provisioning/, and grafana/dashboards/zonewatch-overview.json into /var/lib/grafana/dashboards/zonewatch/ (grafana/README.md)."

test: deps grafana-check
	$(CARGO) test --workspace --lib --bins --tests -- --test-threads=2

# Prometheus rules (promtool check + unit tests), scrape configs, dashboard, queries on a real
# Prometheus, and the alert-shipping example (grafana/README.md).
grafana-check: deps
	bash grafana/check.sh

lint: deps msrv
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 tools/layers.py src
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check licenses bans sources

# RustSec advisories (cargo-deny): needs the advisory database from GitHub, so it
# is its own target, and fails when the database cannot be fetched.
advisories:
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check advisories

# The declared minimum Rust version (Cargo.toml rust-version) really builds the
# library and binaries of the workspace, the generator too (the toolchain is installed
# if missing).
MSRV := $(shell sed -n 's/^rust-version = "\([0-9.]*\)".*/\1/p' Cargo.toml)
msrv:
	@rustup toolchain list | grep -q "^$(MSRV)" || rustup toolchain install $(MSRV) --profile minimal
	$(CARGO) +$(MSRV) check --workspace --lib --bins --target-dir target/msrv

# Whole-process throughput against tcpdump on generated 10M-packet captures, plain and with
# rules, every detector, alerts and metrics (#18); BENCH_PACKETS, BENCH_PROFILES, ... in
# benches/README.md.
bench: deps
	bash benches/run.sh

# Memory bound under a spoofed SYN flood (benches/README.md "Spoofed flood"): FLOOD_PACKETS
# SYNs, each from its own source in 2001:db8::/32, at FLOOD_RATE pps of packet time, replayed
# with every detector on; prints peak RSS (GNU time), evictions and the dos_start, and fails
# if the flood is not detected or nothing was evicted.
FLOOD_PACKETS ?= 10000000
FLOOD_RATE ?= 1000000
FLOOD_MAX_FLOWS ?= 1048576
bench-flood: deps
	$(CARGO) build --release -p zonewatch -p zonewatch-gen
	mkdir -p bench-data
	set -euo pipefail; f=bench-data/synflood-p$(FLOOD_PACKETS)-r$(FLOOD_RATE).pcap; \
	if [ ! -s $$f ]; then ./target/release/zonewatch-gen --out $$f.tmp --profile synflood \
	  --packets $(FLOOD_PACKETS) --rate-pps $(FLOOD_RATE) && mv $$f.tmp $$f; fi; \
	/usr/bin/time -v -o bench-data/flood-time.txt ./target/release/zonewatch replay -q -w 2 \
	  --max-flows $(FLOOD_MAX_FLOWS) --alerts bench-data/flood-alerts.jsonl \
	  --summary bench-data/flood-summary.json $$f; \
	grep -E "Maximum resident|Elapsed" bench-data/flood-time.txt; \
	python3 -c 'import json,sys; s=json.load(open("bench-data/flood-summary.json")); \
	a=[json.loads(l) for l in open("bench-data/flood-alerts.jsonl")]; \
	d=[x for x in a if x["kind"]=="dos_start"]; f=s["flows"]; \
	print("packets", s["packets"], "flows created", f["created"], "evicted", f["evicted"], "peak active", f["peak_active"]); \
	print("detector state_evictions", {k: v["state_evictions"] for k, v in s["alerts"]["detectors"].items()}); \
	print("dos_start", [(x["dest_ip"], x["reason"]) for x in d]); \
	sys.exit(0 if d and f["evicted"] > 0 else "bench-flood: flood not detected or nothing evicted")'

# Live at line rate (#18, benches/README.md "Live at line rate"; root): zonewatch run with every
# detector on, capturing on a veth between two namespaces the script creates and deletes, fed by
# tcpreplay --topspeed senders: kernel drops under two IMIX senders, and the delay to the
# dos_start line under a spoofed SYN flood; LIVE_PACKETS, LIVE_RUNS, ... in benches/README.md.
bench-live: deps
	bash benches/live.sh

# Per-stage criterion benches (decode, flow table, pipeline, the analysis stage per flow).
criterion: deps
	$(CARGO) bench --bench decode --bench flow_table --bench pipeline --bench analysis

# Re-record the bundled captures from real tools in network namespaces (root).
# record-zones.sh records zones.pcap (IPv4; zones-vlan.pcap = it tagged VLAN 900
# by tcprewrite) and zones-v6.pcap (IPv6); record-attacks.sh records the scan, sweep,
# brute-force, flood and benign look-alike captures (nmap, hping3, hydra, sshd, curl);
# record-office.sh records office-noise.pcap (DHCP, ND, MLD, mDNS, LLMNR, NetBIOS, SSDP);
# record-trunk.sh records trunk-vlan.pcap / trunk-untagged.pcap (a router-on-a-stick trunk);
# captures/README.md has the ground truth.
captures: capture-deps
	bash captures/record-sample.sh
	bash captures/record-zones.sh
	bash captures/record-attacks.sh
	bash captures/record-office.sh
	bash captures/record-trunk.sh
	bash captures/record-models.sh

# Fuzz the decoder, the rules loader and capture files through the whole pipeline (targets
# decode, rules, capture) for FUZZ_SECS seconds each (nightly toolchain; corpora seeded from
# captures/, the public captures and the rules files; crashes in fuzz/artifacts/). Fails if any
# target crashed, failed a check or hung.
FUZZ_SECS ?= 600
fuzz: deps
	bash fuzz/run.sh $(FUZZ_SECS)

clean:
	$(CARGO) clean
	rm -rf bench-data
