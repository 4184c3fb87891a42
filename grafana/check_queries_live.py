#!/usr/bin/env python3
"""Runs every line of grafana/queries.txt against a real Prometheus.

Writes one hour of synthetic series with the metric names and labels of the metrics spec
(README "Dashboards and scale-out"; two sensors, scrape labels job/instance/sensor),
backfills them with `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on
that TSDB on a free local port, and queries each expression at the last sample's time.
Every dashboard, annotation and variable query must succeed and return data; every alert
rule must return what the synthetic hour implies (all fire except ZonewatchSensorAbsent).
Needs prometheus and promtool (Debian package prometheus). Usage: check_queries_live.py QUERIES
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

STEP = 15
POINTS = 240  # one hour
SENSORS = {"example-city-core1": "192.0.2.231:9464", "example-city-lgwan1": "192.0.2.232:9464"}
PAIRS = [("mynumber.term", "internet"), ("lgwan.term", "lgwan.srv"), ("internet", "inet.srv"), ("-", "internet")]
VERDICTS = ["allowed", "violation", "unknown", "none"]
KINDS = [("separation_violation", "critical"), ("separation_violation", "high"), ("port_scan", "medium"),
         ("host_sweep", "medium"), ("brute_force", "high"), ("admin_access", "high"), ("zone_bridge", "critical"),
         ("rogue_host", "low"), ("dos_start", "high"), ("dos_update", "high"), ("dos_end", "info")]
# expected: rule name -> fires at the end of the synthetic hour
RULES = {"ZonewatchCriticalSeparationViolation": True, "ZonewatchDosStarted": True,
         "ZonewatchCaptureDrops": True, "ZonewatchSensorDown": True, "ZonewatchSensorAbsent": False}


def series(t0):
    """Yields (family, labels dict, [values per point])."""
    n = POINTS
    for s, inst in SENSORS.items():
        base = {"job": "zonewatch", "instance": inst, "sensor": s}
        L = lambda **kw: dict(base, **kw)
        # the lgwan sensor stops answering for the last 3 minutes (ZonewatchSensorDown)
        yield "up", L(), [0 if (s.endswith("lgwan1") and i >= n - 12) else 1 for i in range(n)]
        yield "zonewatch_build_info", L(version="0.1.0"), [1] * n
        yield "zonewatch_policy_info", L(site="Example City", preset="alpha", sha256="0123456789ab"), [1] * n
        yield "zonewatch_policy_reloads_total", L(result="ok"), [0 if i < n - 4 else 1 for i in range(n)]
        yield "zonewatch_policy_reloads_total", L(result="error"), [0] * n
        yield "zonewatch_policy_last_reload_timestamp_seconds", L(), [t0 if i < n - 4 else t0 + (n - 4) * STEP for i in range(n)]
        for a, b in PAIRS:
            for v in VERDICTS:
                yield "zonewatch_packets_total", L(src_zone=a, dst_zone=b, verdict=v), [i * 100 for i in range(n)]
                yield "zonewatch_bytes_total", L(src_zone=a, dst_zone=b, verdict=v), [i * 80000 for i in range(n)]
            for k, sev in KINDS:
                # alerts every 10 minutes, and once in the last two minutes
                yield "zonewatch_alerts_total", L(kind=k, severity=sev, src_zone=a, dst_zone=b), \
                    [i // 40 + (1 if i >= n - 6 else 0) for i in range(n)]
        yield "zonewatch_capture_packets_total", L(), [i * 10000 for i in range(n)]
        yield "zonewatch_capture_bytes_total", L(), [i * 8000000 for i in range(n)]
        yield "zonewatch_capture_received_packets_total", L(), [i * 10100 for i in range(n)]
        yield "zonewatch_dropped_packets_total", L(reason="kernel"), [i * 100 for i in range(n)]
        yield "zonewatch_dropped_packets_total", L(reason="interface"), [0] * n
        yield "zonewatch_dropped_packets_total", L(reason="queue_full"), [i * 5 for i in range(n)]
        for w in ("0", "1"):
            yield "zonewatch_queue_dropped_packets_total", L(worker=w), [i * 2 for i in range(n)]
            yield "zonewatch_flows_active", L(worker=w), [1000 + i for i in range(n)]
            for q, v in (("0.5", 0.0004), ("0.9", 0.0008), ("0.99", 0.002), ("0.999", 0.004)):
                yield "zonewatch_batch_work_seconds", L(worker=w, quantile=q), [v] * n
            yield "zonewatch_batch_work_seconds_sum", L(worker=w), [i * 3.0 for i in range(n)]
            yield "zonewatch_batch_work_seconds_count", L(worker=w), [i * 1000 for i in range(n)]
        for r in ("truncated", "bad_ip_header"):
            yield "zonewatch_decode_failures_total", L(reason=r), [i for i in range(n)]
        yield "zonewatch_flows_created_total", L(), [i * 50 for i in range(n)]
        for r in ("fin", "rst", "idle_timeout", "evicted", "end_of_capture", "shutdown"):
            yield "zonewatch_flows_ended_total", L(reason=r), [i * 8 for i in range(n)]
        yield "zonewatch_flows_evicted_total", L(), [i for i in range(n)]
        yield "zonewatch_dos_episodes_active", L(), [1 if i >= n - 6 else 0 for i in range(n)]
        for q, v in (("0.5", 0.00002), ("0.9", 0.00005), ("0.99", 0.0002), ("0.999", 0.001)):
            yield "zonewatch_packet_verdict_latency_seconds", L(quantile=q), [v] * n
        yield "zonewatch_packet_verdict_latency_seconds_sum", L(), [i * 0.3 for i in range(n)]
        yield "zonewatch_packet_verdict_latency_seconds_count", L(), [i * 10000 for i in range(n)]
        yield "zonewatch_capture_time_seconds", L(), [t0 + i * STEP - 2 for i in range(n)]


def openmetrics(t0):
    fams = {}
    for fam, labels, vals in series(t0):
        fams.setdefault(fam, []).append((labels, vals))
    out = []
    for fam, ss in fams.items():
        out.append(f"# TYPE {fam} unknown\n")
        for labels, vals in ss:
            lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            for i, v in enumerate(vals):
                out.append(f"{fam}{{{lab}}} {v} {t0 + i * STEP}\n")
    out.append("# EOF\n")
    return "".join(out)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main():
    queries = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    tmp = tempfile.mkdtemp(prefix="zw-prom-")
    proc = None
    try:
        t0 = (int(time.time()) - POINTS * STEP - 60) // STEP * STEP
        t_end = t0 + (POINTS - 1) * STEP
        with open(os.path.join(tmp, "in.om"), "w") as f:
            f.write(openmetrics(t0))
        data = os.path.join(tmp, "data")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", os.path.join(tmp, "in.om"), data],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        port = free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        proc = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={data}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1)
                break
            except Exception:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            pass
        failures = []
        for kind, name, expr in queries:
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": t_end})
            try:
                r = get(url)
            except Exception as e:
                failures.append(f"{kind} {name}: no answer from prometheus ({e})")
                continue
            if r.get("status") != "success":
                failures.append(f"{kind} {name}: {r.get('errorType')}: {r.get('error')}")
                continue
            n = len(r["data"]["result"]) if r["data"]["resultType"] in ("vector", "matrix") else 1
            want = RULES.get(name, True) if kind == "rule" else True
            if (n > 0) != want:
                failures.append(f"{kind} {name}: {n} series, expected {'some' if want else 'none'}")
        if failures:
            sys.stderr.write(open(os.path.join(tmp, "prometheus.log")).read()[-2000:] if proc.poll() is not None else "")
            print("\n".join("FAIL: " + f for f in failures))
            sys.exit(1)
        print(f"prometheus {len(queries)} queries: all ran on backfilled spec metrics with the expected results")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
