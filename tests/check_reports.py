#!/usr/bin/env python3
"""Check a vnetbed run directory's reports with independent, real consumers.

usage: check_reports.py RUN_DIR REPORT_SCHEMA TIMELINE_SCHEMA EXPECT_JSON

EXPECT_JSON is an object:
  verdict       "pass" | "fail" | "error"
  testcases     the JUnit testcase names, in order
  failures      names of testcases that must carry <failure>
  errors        names of testcases that must carry <error>
  skipped       names of testcases that must carry <skipped>
  first_stall   null, or the expected {"kind": ..., "queue": ...}
  plots         the data-plot ids report.html must contain
  plots_with_data  those of them that must hold data (default: all of them)

Checks:
  timeline.jsonl  every line validates against TIMELINE_SCHEMA, except a torn last line
                (no newline); report.json counts the same records;
  report.json   parses and validates against the JSON Schema (python3-jsonschema);
  junit.xml     is read by junitparser (python3-junitparser), one testsuite, the expected
                testcases and results, every failure with a message;
  report.html   is well-formed (xml.etree, and html.parser with tag balancing), has no
                external resources or scripts, and one <svg> per plot with data points.
Prints what failed and exits 1, or prints OK and exits 0.
"""

import json
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import junitparser

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return cond


def check_json(run_dir, schema_path, expect):
    report = json.loads((run_dir / "report.json").read_text())
    schema = json.loads(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for err in validator.iter_errors(report):
        problems.append(f"report.json: schema: {'/'.join(map(str, err.path))}: {err.message}")
    check(report["verdict"] == expect["verdict"], f"report.json verdict {report['verdict']} != {expect['verdict']}")
    exit_status = {"pass": 0, "fail": 1, "error": 2}[expect["verdict"]]
    check(report["exit_status"] == exit_status, f"report.json exit_status {report['exit_status']}")
    names = [c["name"] for c in report["checks"]]
    check(names == expect["testcases"], f"report.json checks {names}")
    want = expect["first_stall"]
    got = report["first_stall"]
    if want is None:
        check(got is None, f"report.json first_stall should be null, is {got}")
    elif check(got is not None, "report.json first_stall is null"):
        for key, value in want.items():
            check(got.get(key) == value, f"report.json first_stall.{key} = {got.get(key)!r}, want {value!r}")
        check(want["kind"] in got["signature"], "the signature names the stall's kind")
    return report


def check_timeline(run_dir, schema_path, report):
    text = (run_dir / "timeline.jsonl").read_text()
    validator = jsonschema.Draft202012Validator(json.loads(Path(schema_path).read_text()))
    lines = text.split("\n")
    valid = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        torn = number == len(lines) and not text.endswith("\n")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            check(torn, f"timeline.jsonl line {number}: not JSON, and not a torn last line")
            continue
        errors = list(validator.iter_errors(record))
        for err in errors[:1]:
            problems.append(f"timeline.jsonl line {number}: schema: {err.message[:300]}")
        valid += not errors
    check(valid == report["record"]["records"] + 1, f"timeline.jsonl: {valid} valid lines, report.json counts {report['record']['records']} + header")


def check_junit(run_dir, expect):
    xml = junitparser.JUnitXml.fromfile(str(run_dir / "junit.xml"))
    suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
    if not check(len(suites) == 1, f"junit.xml has {len(suites)} testsuites, want 1"):
        return
    suite = suites[0]
    cases = list(suite)
    names = [c.name for c in cases]
    check(names == expect["testcases"], f"junit.xml testcases {names}")
    check(suite.tests == len(expect["testcases"]), f"junit.xml tests={suite.tests}")
    check(suite.failures == len(expect["failures"]), f"junit.xml failures={suite.failures}")
    check(suite.errors == len(expect["errors"]), f"junit.xml errors={suite.errors}")
    check(suite.skipped == len(expect["skipped"]), f"junit.xml skipped={suite.skipped}")
    for case in cases:
        kinds = {type(r).__name__ for r in case.result}
        want = set()
        if case.name in expect["failures"]:
            want.add("Failure")
        if case.name in expect["errors"]:
            want.add("Error")
        if case.name in expect["skipped"]:
            want.add("Skipped")
        check(kinds == want, f"junit.xml {case.name}: results {sorted(kinds)}, want {sorted(want)}")
        check(case.is_passed == (not want), f"junit.xml {case.name}: is_passed={case.is_passed}")
        for r in case.result:
            check(bool(r.message), f"junit.xml {case.name}: {type(r).__name__} without a message")
            check(bool(r.text), f"junit.xml {case.name}: {type(r).__name__} without details")


class Balance(HTMLParser):
    """A strict HTML check: every element closed in order, nothing external."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        check(tag != "script", "report.html has a <script>")
        check(tag != "link", "report.html links an external resource")
        for key in ("src", "href"):
            if key in a:
                check(not a[key].startswith(("http:", "https:", "//")), f"report.html fetches {a[key]}")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if check(bool(self.stack), f"report.html: </{tag}> at {self.getpos()} closes nothing"):
            open_tag, pos = self.stack.pop()
            check(open_tag == tag, f"report.html: </{tag}> at {self.getpos()} closes <{open_tag}> from {pos}")


def check_html(run_dir, expect):
    text = (run_dir / "report.html").read_text()
    b = Balance()
    b.feed(text)
    b.close()
    check(not b.stack, f"report.html: unclosed elements {b.stack[:5]}")
    root = ET.fromstring(text.split("\n", 1)[1] if text.startswith("<!DOCTYPE") else text)
    svgs = root.findall(f".//{SVG}svg")
    ids = [s.get("data-plot") for s in svgs]
    check(ids == expect["plots"], f"report.html plots {ids}, want {expect['plots']}")
    with_data = expect.get("plots_with_data", expect["plots"])
    for svg in svgs:
        pid = svg.get("data-plot")
        check(svg.find(f"{SVG}title") is not None, f"report.html plot {pid} has no <title>")
        if pid not in with_data:
            continue
        points = sum(len(p.get("points", "").split()) for p in svg.iter(f"{SVG}polyline"))
        marks = len(list(svg.iter(f"{SVG}circle"))) + len(list(svg.iter(f"{SVG}path"))) + len(
            [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "band"]
        )
        check(points + marks > 0, f"report.html plot {pid} has no data points")
    return root, svgs


def main():
    run_dir, schema_path, timeline_schema, expect = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    report = check_json(run_dir, schema_path, expect)
    check_timeline(run_dir, timeline_schema, report)
    check_junit(run_dir, expect)
    root, svgs = check_html(run_dir, expect)
    if report["first_stall"] is not None:
        labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "marker-label"]
        check(any(report["first_stall"]["kind"] in (l or "") for l in labels), "no visible stall label in the plots")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"OK: schema-valid, junit {len(expect['testcases'])} testcases, {len(svgs)} plots")


if __name__ == "__main__":
    main()
