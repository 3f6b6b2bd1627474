#!/usr/bin/env python3
"""Per-suite counts of a swift-testing xUnit file (the bundle's --xunit-output).

    vm/test-summary.py tests.xml

Prints one row per suite (passed, failed, skipped), then every failed and
skipped test with its first message.  A parameterized test counts once, as
the xUnit file has it.
"""
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

counts = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0})
notes = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    suite, name = case.get("classname", "?"), case.get("name", "?")
    failure, skipped = case.find("failure"), case.find("skipped")
    if failure is not None:
        kind, text = "failed", failure.get("message") or (failure.text or "")
    elif skipped is not None:
        kind, text = "skipped", skipped.get("message") or (skipped.text or "")
    else:
        kind, text = "passed", ""
    counts[suite][kind] += 1
    if kind != "passed":
        notes.append(f"{kind:8} {suite}/{name}: {' '.join(text.split())[:300]}")

print(f"{'suite':48} {'passed':>6} {'failed':>6} {'skipped':>7}")
total = {"passed": 0, "failed": 0, "skipped": 0}
for suite in sorted(counts):
    c = counts[suite]
    print(f"{suite:48} {c['passed']:6} {c['failed']:6} {c['skipped']:7}")
    for k in total:
        total[k] += c[k]
print(f"{'(all)':48} {total['passed']:6} {total['failed']:6} {total['skipped']:7}")
for line in notes:
    print(line)
