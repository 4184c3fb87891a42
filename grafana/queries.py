#!/usr/bin/env python3
"""Every PromQL expression of the dashboard and the alerting rules, one per line:

    <dashboard|rule|annotation|variable> TAB <panel title / refId, or rule name> TAB <expr>

Grafana variables replaced by concrete values (SUBST below) so each line runs as is
against a Prometheus. `queries.py` prints the list; `queries.py --check FILE` fails
when FILE (grafana/queries.txt) is not what it would print.
"""
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SENSORS = ["example-city-core1", "example-city-lgwan1"]
SUBST = [
    ("$__rate_interval", "1m"),
    ("$__range", "1h"),
    ("$sensor", "(" + "|".join(SENSORS) + ")"),
]


def concrete(expr):
    expr = " ".join(expr.split())
    for k, v in SUBST:
        expr = expr.replace(k, v)
    return expr


def lines():
    out = []
    with open(os.path.join(HERE, "dashboards", "zonewatch-overview.json"), encoding="utf-8") as f:
        dash = json.load(f)
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            # label_values(metric, label) is Grafana's; the PromQL that lists the same values:
            if q.startswith("label_values(") and q.endswith(")"):
                metric, label = (x.strip() for x in q[len("label_values("):-1].rsplit(",", 1))
                q = f"group by ({label}) ({metric})"
            out.append(("variable", v["name"], q))
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            out.append(("annotation", a["name"], concrete(a["expr"])))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(("dashboard", f'{p["title"]} [{t["refId"]}]', concrete(t["expr"])))
    with open(os.path.join(HERE, "prometheus", "rules", "zonewatch-alerts.yml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    for g in rules["groups"]:
        for r in g["rules"]:
            out.append(("rule", r.get("alert") or r.get("record"), concrete(r["expr"])))
    return out


def render():
    return "".join(f"{k}\t{n}\t{e}\n" for k, n, e in lines())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        with open(sys.argv[2], encoding="utf-8") as f:
            if f.read() != render():
                sys.exit(f"FAIL: {sys.argv[2]} is stale: regenerate with python3 grafana/queries.py > grafana/queries.txt")
        print(f"queries.txt: {len(lines())} expressions, up to date")
    elif len(sys.argv) == 1:
        sys.stdout.write(render())
    else:
        sys.exit("usage: queries.py [--check FILE]")
