#!/usr/bin/env python3
"""Static checks of the Grafana dashboard, the provisioning files and the Vector example.

- dashboard JSON: valid; variables `datasource` (datasource, prometheus) and `sensor`
  (label_values(zonewatch_build_info, sensor), multi, All); every panel but rows and every
  target uses datasource ${datasource}; every target and annotation expr filters
  sensor=~"$sensor"; every metric it names is one of the metrics spec's; titles are
  Japanese / English; panel ids unique; panels do not overlap.
- provisioning YAML: apiVersion 1, a prometheus datasource, a file dashboard provider.
- shipping/vector.toml: valid TOML, every input names a component defined in the file.
"""
import json
import os
import re
import sys
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# metrics spec (issue 5): the sensor's metric names; a summary adds _sum and _count
METRICS = {
    "zonewatch_build_info", "zonewatch_policy_info", "zonewatch_policy_reloads_total",
    "zonewatch_policy_last_reload_timestamp_seconds", "zonewatch_packets_total", "zonewatch_bytes_total",
    "zonewatch_capture_packets_total", "zonewatch_capture_bytes_total", "zonewatch_capture_received_packets_total",
    "zonewatch_dropped_packets_total", "zonewatch_queue_dropped_packets_total", "zonewatch_decode_failures_total",
    "zonewatch_flows_active", "zonewatch_flows_created_total", "zonewatch_flows_ended_total",
    "zonewatch_flows_evicted_total", "zonewatch_alerts_total", "zonewatch_dos_episodes_active",
    "zonewatch_packet_verdict_latency_seconds", "zonewatch_batch_work_seconds", "zonewatch_capture_time_seconds",
    "zonewatch_evidence_files_total", "zonewatch_evidence_bytes_total", "zonewatch_evidence_cuts_total",
}
SUMMARIES = {"zonewatch_packet_verdict_latency_seconds", "zonewatch_batch_work_seconds"}
DS_UID = "${datasource}"
SENSOR_FILTER = 'sensor=~"$sensor"'
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
errors = []


def err(msg):
    errors.append(msg)


def check_metrics(where, expr):
    for m in re.findall(r"\bzonewatch_[a-z0-9_]+", expr):
        base = re.sub(r"_(sum|count)$", "", m)
        if m not in METRICS and not (base in SUMMARIES and m != base):
            err(f"{where}: metric {m} is not in the metrics spec")


def check_dashboard(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not d.get("uid") or not d.get("title"):
        err("dashboard: uid and title required")
    vars_ = {v["name"]: v for v in d["templating"]["list"]}
    ds = vars_.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        err("variable datasource: must be type datasource, query prometheus")
    s = vars_.get("sensor")
    q = s and (s["query"]["query"] if isinstance(s["query"], dict) else s["query"])
    if not s or q != "label_values(zonewatch_build_info, sensor)" or not s.get("multi") or not s.get("includeAll"):
        err("variable sensor: must be label_values(zonewatch_build_info, sensor), multi, include All")
    elif s.get("datasource", {}).get("uid") != DS_UID:
        err("variable sensor: datasource must be ${datasource}")
    for a in d["annotations"]["list"]:
        if "expr" in a:
            if a.get("datasource", {}).get("uid") != DS_UID:
                err(f"annotation {a['name']}: datasource must be ${{datasource}}")
            if SENSOR_FILTER not in a["expr"]:
                err(f"annotation {a['name']}: expr lacks {SENSOR_FILTER}")
            check_metrics(f"annotation {a['name']}", a["expr"])
    ids, cells, n_targets = set(), {}, 0
    for p in d["panels"]:
        t = p.get("title", "")
        if p["id"] in ids:
            err(f"panel {t}: duplicate id {p['id']}")
        ids.add(p["id"])
        if not JAPANESE.search(t) or " / " not in t or not re.search(r"/ .*[A-Za-z]", t):
            err(f"panel {t!r}: title must be Japanese / English")
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    err(f"panel {t}: overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = t
            else:
                continue
            break
        if g["x"] + g["w"] > 24:
            err(f"panel {t}: wider than the 24-column grid")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != DS_UID:
            err(f"panel {t}: datasource must be ${{datasource}}")
        if not p.get("targets"):
            err(f"panel {t}: no targets")
        for tg in p.get("targets", []):
            n_targets += 1
            if tg.get("datasource", {}).get("uid") != DS_UID:
                err(f"panel {t} [{tg.get('refId')}]: target datasource must be ${{datasource}}")
            e = tg.get("expr", "")
            if e.count("zonewatch_") + e.count("up{") != e.count(SENSOR_FILTER):
                err(f"panel {t} [{tg.get('refId')}]: every selector must filter {SENSOR_FILTER}: {e}")
            if SENSOR_FILTER not in e:
                err(f"panel {t} [{tg.get('refId')}]: expr lacks {SENSOR_FILTER}")
            check_metrics(f"panel {t}", e)
    return sum(1 for p in d["panels"] if p["type"] != "row"), n_targets


def check_provisioning():
    with open(os.path.join(HERE, "provisioning", "datasources", "prometheus.yaml"), encoding="utf-8") as f:
        ds = yaml.safe_load(f)
    if ds.get("apiVersion") != 1 or not any(x.get("type") == "prometheus" and x.get("url") for x in ds.get("datasources", [])):
        err("provisioning/datasources/prometheus.yaml: apiVersion 1 and a prometheus datasource with a url")
    with open(os.path.join(HERE, "provisioning", "dashboards", "zonewatch.yaml"), encoding="utf-8") as f:
        db = yaml.safe_load(f)
    if db.get("apiVersion") != 1 or not any(x.get("type") == "file" and x.get("options", {}).get("path")
                                             for x in db.get("providers", [])):
        err("provisioning/dashboards/zonewatch.yaml: apiVersion 1 and a file provider with options.path")


def check_vector():
    with open(os.path.join(HERE, "shipping", "vector.toml"), "rb") as f:
        v = tomllib.load(f)
    names = set(v.get("sources", {})) | set(v.get("transforms", {}))
    outputs = names | {f"{n}.dropped" for n, t in v.get("transforms", {}).items() if t.get("reroute_dropped")}
    for kind in ("transforms", "sinks"):
        for n, c in v.get(kind, {}).items():
            for i in c.get("inputs", []):
                if i not in outputs:
                    err(f"vector.toml {kind}.{n}: input {i} is not defined")
    src = v.get("sources", {}).get("zonewatch_alerts", {})
    if src.get("type") != "file" or not src.get("include"):
        err("vector.toml: sources.zonewatch_alerts must be a file source with include")
    if not v.get("sinks"):
        err("vector.toml: no sinks")


if __name__ == "__main__":
    n_panels, n_targets = check_dashboard(os.path.join(HERE, "dashboards", "zonewatch-overview.json"))
    check_provisioning()
    check_vector()
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        sys.exit(1)
    print(f"dashboard: {n_panels} panels, {n_targets} targets, all on ${{datasource}} and filtered by $sensor; "
          "provisioning and vector.toml well-formed")
