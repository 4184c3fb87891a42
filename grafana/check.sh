#!/usr/bin/env bash
# Checks everything under grafana/ (make grafana-check):
#   promtool check rules / test rules / check config on the Prometheus files,
#   static checks of the dashboard, provisioning and Vector example (check_dashboard.py),
#   queries.txt up to date (queries.py) and every query run on a real Prometheus
#   over backfilled spec metrics (check_queries_live.py),
#   the rsyslog shipping example validated and run end to end (shipping/test-rsyslog.sh).
# Needs the Debian packages prometheus, rsyslog, python3, python3-yaml (make deps).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
py=/usr/bin/python3   # Debian's python3 with python3-yaml
for tool in promtool prometheus rsyslogd "$py"; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (run make deps)"; exit 1; }
done
pass=0
step() { echo "== $*"; }
ok() { pass=$((pass + 1)); }

step "promtool check rules";  promtool check rules prometheus/rules/zonewatch-alerts.yml; ok
step "promtool test rules";   promtool test rules prometheus/rules/zonewatch-alerts.test.yml; ok
for cfg in prometheus/prometheus.yml prometheus/federation.yml prometheus/remote-write.yml; do
    step "promtool check config $cfg"; promtool check config "$cfg"; ok
done
step "dashboard, provisioning, vector.toml"; "$py" check_dashboard.py; ok
step "queries.txt up to date";  "$py" queries.py --check queries.txt; ok
step "queries on a real Prometheus"; "$py" check_queries_live.py queries.txt; ok
step "rsyslog shipping end to end"; bash shipping/test-rsyslog.sh; ok
echo "grafana-check: $pass passed, 0 failed"
