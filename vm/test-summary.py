#!/usr/bin/env python3
"""Per-suite passed/failed/skipped counts of a swift-testing run.

    vm/test-summary.py tests.xml                      the bundle's --xunit-output
    vm/test-summary.py --console tests.log list.jsonl a run cut short (no xUnit):
        its console output, with the test list that names each test's suite:
        BUNDLE --testing-library swift-testing --list-tests \
               --event-stream-output-path list.jsonl --event-stream-version 0

Prints one row per suite, then every test that did not pass with its first
message (skip reasons included).  A parameterized test counts once.  From a
console log, tests that never finished are counted as "unfinished".
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

KINDS = ["passed", "failed", "skipped", "unfinished"]


def from_xunit(path):
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            kind, text = "failed", failure.get("message") or (failure.text or "")
        elif skipped is not None:
            kind, text = "skipped", skipped.get("message") or (skipped.text or "")
        else:
            kind, text = "passed", ""
        results.append((case.get("classname", "?"), case.get("name", "?"), kind, text))
    return results


def from_console(log, listing):
    # The name the console shows (display name quoted, else the function) → suites.
    suites = defaultdict(set)
    for line in open(listing):
        r = json.loads(line)
        p = r.get("payload", {})
        if r.get("kind") != "test" or p.get("kind") != "function":
            continue
        parts = p["id"].split("/")
        suite = "/".join(parts[:-2]) if len(parts) >= 3 else p["sourceLocation"]["fileID"].removesuffix(".swift")
        shown = '"%s"' % p["displayName"] if "displayName" in p else p["name"]
        suites[shown].add(suite)
    outcome, first_issue = {}, {}
    for line in open(log, encoding="utf-8", errors="replace"):
        line = line.rstrip("\r\n")
        m = re.match(r"^[✔✘] Test (.*?)(?: with \d+ test cases?)? (passed|failed) after", line)
        if m:
            outcome[m.group(1)] = (m.group(2), "")
        m = re.match(r"^✘ Test (.*?) recorded an issue.* at (\S+\.swift:\d+:\d+: .*)$", line)
        if m:
            first_issue.setdefault(m.group(1), m.group(2))
        m = re.match(r"^➜ Test (.*?) skipped: (.*)$", line)
        if m:
            outcome[m.group(1)] = ("skipped", m.group(2))
        m = re.match(r"^➜ Suite (.*?) skipped: (.*)$", line)
        if m:
            for shown, ss in suites.items():
                if any(s.endswith("." + m.group(1)) for s in ss):
                    outcome.setdefault(shown, ("skipped", m.group(2)))
    results = []
    for shown, ss in suites.items():
        kind, text = outcome.get(shown, ("unfinished", ""))
        if kind == "failed":
            text = first_issue.get(shown, "")
        for s in ss:
            results.append((s, shown, kind, text))
    return results


def main():
    results = from_console(sys.argv[2], sys.argv[3]) if sys.argv[1] == "--console" else from_xunit(sys.argv[1])
    counts = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for suite, _, kind, _ in results:
        counts[suite][kind] += 1
    shown_kinds = KINDS[:3] + [k for k in KINDS[3:] if any(c[k] for c in counts.values())]
    print(f"{'suite':52}" + "".join(f" {k:>10}" for k in shown_kinds))
    total = dict.fromkeys(KINDS, 0)
    for suite in sorted(counts):
        print(f"{suite:52}" + "".join(f" {counts[suite][k]:10}" for k in shown_kinds))
        for k in KINDS:
            total[k] += counts[suite][k]
    print(f"{'(all)':52}" + "".join(f" {total[k]:10}" for k in shown_kinds))
    for suite, name, kind, text in sorted(results):
        if kind != "passed":
            print(f"{kind:10} {suite}/{name}: {' '.join(text.split())[:300]}")


main()
