#!/usr/bin/env bash
# The alerting rules (issue 16) with Debian's promtool: the rules file is
# valid, `promtool test rules` passes with series for every alert (each
# firing when it should and quiet when it should not), every alert carries
# a severity, a summary and a runbook naming a wispctl command, and the
# PrometheusRule in deploy/kubernetes holds exactly the same rules. Also
# that these checks can fail: a rule broken on purpose fails the unit
# tests, a PrometheusRule edited by hand is told apart.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
PY=/usr/bin/python3
RULES=$WISP_SRC/deploy/prometheus/wisp-alerts.rules.yaml
PROMRULE=$WISP_SRC/deploy/kubernetes/wisp-alerts-prometheusrule.yaml
TESTS=$WISP_SRC/tests/alerts/wisp-alerts.test.yaml
command -v promtool >/dev/null || { not_ok "promtool is installed (deploy/install-deps.sh: prometheus)"; finish; }

check "promtool check rules accepts deploy/prometheus/wisp-alerts.rules.yaml" \
  sh -c "promtool check rules '$RULES' >'$WORK/check.out' 2>&1"
if (cd "$(dirname "$TESTS")" && promtool test rules "$(basename "$TESTS")") >"$WORK/test.out" 2>&1; then
  ok "promtool test rules: every alert fires and stays quiet as tests/alerts/wisp-alerts.test.yaml expects"
else
  not_ok "promtool test rules" "$(head -c 2000 "$WORK/test.out")"
fi

# Every alert of the rules file has a firing and a quiet case in the unit
# tests, a severity, a summary and a runbook that names a wispctl command.
check "every alert is tested firing and quiet, with severity, summary and a wispctl runbook" $PY - "$RULES" "$TESTS" <<'PY'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
tests = yaml.safe_load(open(sys.argv[2]))
alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
bad = []
for a in alerts:
    n = a["alert"]
    fires = any(c["alertname"] == n and c.get("exp_alerts") for c in cases)
    quiet = any(c["alertname"] == n and not c.get("exp_alerts") for c in cases)
    ann = a.get("annotations", {})
    if not fires: bad.append(n + ": no case where it fires")
    if not quiet: bad.append(n + ": no case where it stays quiet")
    if a.get("labels", {}).get("severity") not in ("critical", "warning"): bad.append(n + ": severity")
    if not ann.get("summary"): bad.append(n + ": summary")
    if "wispctl" not in ann.get("runbook", ""): bad.append(n + ": runbook without wispctl")
if len(alerts) < 10: bad.append("only %d alerts" % len(alerts))
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# The PrometheusRule holds the same groups, and is what the generator makes.
same_rules() { # same_rules RULES PROMRULE
  $PY -c '
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
pr = yaml.safe_load(open(sys.argv[2]))
ok = (pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["kind"] == "PrometheusRule"
      and pr["spec"]["groups"] == rules["groups"])
sys.exit(0 if ok else 1)' "$1" "$2"
}
check "deploy/kubernetes/wisp-alerts-prometheusrule.yaml holds the same rules as the rules file" same_rules "$RULES" "$PROMRULE"
check "... and is exactly what deploy/prometheus/make-prometheusrule.py makes of it" \
  $PY "$WISP_SRC/deploy/prometheus/make-prometheusrule.py" --check
$PY -c 'import sys, yaml; yaml.safe_dump({"groups": yaml.safe_load(open(sys.argv[1]))["spec"]["groups"]}, open(sys.argv[2], "w"))' \
  "$PROMRULE" "$WORK/from-promrule.yaml"
check "promtool check rules accepts the PrometheusRule's groups" \
  sh -c "promtool check rules '$WORK/from-promrule.yaml' >/dev/null 2>&1"

# ---- the checks can fail ----
sed 's/vector(2592000)/vector(2591999)/' "$PROMRULE" >"$WORK/edited.yaml"
if ! cmp -s "$PROMRULE" "$WORK/edited.yaml" && ! same_rules "$RULES" "$WORK/edited.yaml"; then
  ok "a PrometheusRule with a threshold edited by hand is told apart"
else
  not_ok "a PrometheusRule with a threshold edited by hand is told apart"
fi
# Rules without the branch that sees a new caller's first refusal: the
# single unknown-CA handshake of the unit tests no longer alerts.
mkdir -p "$WORK/m/deploy/prometheus" "$WORK/m/tests/alerts"
cp "$TESTS" "$WORK/m/tests/alerts/"
# mutant WHAT SED-SCRIPT FAILING-CASE: the rules edited by SED-SCRIPT fail
# the unit tests at FAILING-CASE ("alertname: X, time: T").
mutant() {
  sed "$2" "$RULES" >"$WORK/m/deploy/prometheus/wisp-alerts.rules.yaml"
  if cmp -s "$RULES" "$WORK/m/deploy/prometheus/wisp-alerts.rules.yaml"; then
    not_ok "$1 fail the unit tests" "the edit changed nothing"
  elif (cd "$WORK/m/tests/alerts" && promtool test rules wisp-alerts.test.yaml) >"$WORK/mut.out" 2>&1; then
    not_ok "$1 fail the unit tests" "promtool test rules passed"
  elif grep -q "$3" "$WORK/mut.out"; then
    ok "$1 fail the unit tests ($3)"
  else
    not_ok "$1 fail the unit tests" "$(head -c 1000 "$WORK/mut.out")"
  fi
}
mutant "rules that miss a new caller's first refusal" \
  '/unless present_over_time(wisp_connection_refusals_total/d' 'alertname: WispUnknownCACaller, time: 4m'
# The new-series branch as it was: a series absent 5 minutes ago counts
# whole, so a scrape gap re-fires an old caller's lifetime count.
mutant "rules that count a series across a scrape gap as new" \
  's/present_over_time(\(wisp_[a-z_]*\)\[1h\] offset 5m)/\1 offset 5m/' 'alertname: WispUnknownCACaller, time: 22m'
finish
