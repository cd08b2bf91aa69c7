"""Checks a Grafana dashboard's PromQL against a live /metrics text.

usage: dashboard_check.py DASHBOARD.json METRICS.txt [METRICS.txt...]

Every query (panel targets' expr, template variables' queries) must name
at least one metric, every metric it names must be one the /metrics texts
export (from their # TYPE lines: a histogram exports NAME_bucket, _sum and
_count), and every label it selects or groups by must appear on some
exported sample (or be one Prometheus adds at scrape: instance, job).
Prints one line per problem and exits 1 if there is any; else prints a
summary and exits 0.
"""
import json
import re
import sys

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan"}
SCRAPE_LABELS = {"instance", "job", "le"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def exported(paths):
    names, labels = set(), set()
    for path in paths:
        for line in open(path, encoding="utf-8"):
            m = re.match(r"# TYPE (%s) (\w+)" % IDENT, line)
            if m:
                kind = m.group(2)
                names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {m.group(1)}
                continue
            m = re.match(r"(%s)\{(.*)\} " % IDENT, line)
            if m:
                labels |= set(re.findall(r'(%s)="' % IDENT, m.group(2)))
    return names, labels


def queries(dash):
    """(where, PromQL) of every query in the dashboard."""
    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))
    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            yield "panel %r" % p.get("title"), t.get("expr", "")
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        yield "variable %r" % v.get("name"), q.get("query", "") if isinstance(q, dict) else q or ""


def parse(expr):
    """(metric names, label names) an expression uses."""
    labels = set()
    m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*(%s)\s*\)\s*" % IDENT, expr)
    if m:  # Grafana's label_values(SERIES, LABEL)
        expr, labels = m.group(1), {m.group(2)}
    for sel in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r'(%s)\s*(?:=~|!~|!=|=)\s*"' % IDENT, sel))
    for lst in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in lst.split(",") if x.strip()}
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\$\w+", " ", bare)
    names = set()
    for m in re.finditer(IDENT, bare):
        word, rest = m.group(0), bare[m.end():]
        if word.lower() in KEYWORDS or re.match(r"\s*\(", rest) or re.match(r"[0-9]", word):
            continue
        if m.start() > 0 and (bare[m.start() - 1].isdigit() or bare[m.start() - 1] == "."):
            continue  # the exponent or suffix of a number (1e3)
        names.add(word)
    return names, labels


def main():
    dash = json.load(open(sys.argv[1], encoding="utf-8"))
    names, labels = exported(sys.argv[2:])
    problems, n = [], 0
    for where, expr in queries(dash):
        n += 1
        used, used_labels = parse(expr)
        if not used:
            problems.append("%s: names no metric: %s" % (where, expr))
        for name in sorted(used - names):
            problems.append("%s: %s is not a metric wisp exports" % (where, name))
        for label in sorted(used_labels - labels - SCRAPE_LABELS):
            problems.append("%s: label %s is on no exported sample" % (where, label))
    if n == 0:
        problems.append("no queries found")
    for p in problems:
        print(p)
    if not problems:
        print("%d queries, every metric and label exported" % n)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
