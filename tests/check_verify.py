#!/usr/bin/env python3
"""Check a vnetbed verify directory's outputs with independent, real consumers.

usage: check_verify.py VERIFY_DIR VERIFY_SCHEMA REPORT_SCHEMA

Checks:
  verify.json          validates against VERIFY_SCHEMA (python3-jsonschema);
  */report.json        each run's report validates against REPORT_SCHEMA;
  **/junit.xml         every file parses with junitparser (python3-junitparser), as a CI job
                       collecting **/junit.xml would read them; suite names are unique across
                       all of them;
  report.html          is well-formed XML (xml.etree), has no scripts or external resources,
                       and every link points at a file that exists.
Prints what it found as JSON on stdout and exits 0, or prints the problems on stderr and
exits 1.
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import junitparser

XHTML = "{http://www.w3.org/1999/xhtml}"


def main():
    root, verify_schema, report_schema = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    problems = []

    def validate(path, schema_path):
        schema = json.loads(Path(schema_path).read_text())
        doc = json.loads(path.read_text())
        for err in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            problems.append(f"{path}: schema: {'/'.join(map(str, err.path))}: {err.message}")

    validate(root / "verify.json", verify_schema)
    for report in sorted(root.glob("*/report.json")):
        validate(report, report_schema)

    found = {"junit_files": 0, "failures": 0, "errors": 0, "top_suites": {}}
    seen_suites = {}
    for path in sorted(root.rglob("junit.xml")):
        found["junit_files"] += 1
        xml = junitparser.JUnitXml.fromfile(str(path))
        suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
        failures = errors = 0
        for suite in suites:
            if suite.name in seen_suites:
                problems.append(f"suite {suite.name} in {path} and {seen_suites[suite.name]}")
            seen_suites[suite.name] = path
            for case in suite:
                for result in case.result:
                    if isinstance(result, junitparser.Failure):
                        failures += 1
                        if not result.message:
                            problems.append(f"{path}: {case.name}: a failure without a message")
                    elif isinstance(result, junitparser.Error):
                        errors += 1
            if path.parent == root:
                found["top_suites"][suite.name] = [case.name for case in suite]
        found["failures"] += failures
        found["errors"] += errors
        if path.parent == root:
            found["top_failures"], found["top_errors"] = failures, errors

    page = root / "report.html"
    tree = ET.parse(page)
    if tree.getroot().tag != XHTML + "html":
        problems.append(f"{page}: root element {tree.getroot().tag}")
    links = []
    for el in tree.iter():
        if el.tag in (XHTML + "script", XHTML + "link", XHTML + "img"):
            problems.append(f"{page}: has a <{el.tag}>")
        href = el.get("href")
        if href is not None:
            links.append(href)
            if not (root / href).is_file():
                problems.append(f"{page}: link to {href}, which does not exist")
    found["links"] = links

    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(found))


main()
