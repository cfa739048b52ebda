"""JUnit XML for CI: one <testsuite> per scenario file, one <testcase> per step.

A step per test case lets a CI page point at the exact step that failed; the steps after it are
`<skipped/>`, because a scenario is one story and later steps depend on earlier ones. The set-up
of the file's `subscribers` is a test case of its own ("00 set up subscribers").
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from gateway.harness.scenario.runner import ScenarioResult, StepResult


def case_name(step: StepResult) -> str:
    return f"{step.index:02d} {step.label}"


def _suite(result: ScenarioResult) -> ET.Element:
    failures = sum(s.outcome == "failed" for s in result.steps)
    skipped = sum(s.outcome == "skipped" for s in result.steps)
    suite = ET.Element(
        "testsuite",
        {
            "name": result.name,
            "file": result.source,
            "tests": str(len(result.steps)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{result.duration_s:.3f}",
        },
    )
    for step in result.steps:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": case_name(step),
                "classname": result.name,
                "file": result.source,
                "time": f"{step.duration_s:.3f}",
            },
        )
        if step.outcome == "failed":
            first = step.problems[0] if step.problems else "failed"
            failure = ET.SubElement(case, "failure", {"message": first, "type": "ScenarioFailure"})
            failure.text = step.message
        elif step.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": "an earlier step failed"})
    return suite


def junit_tree(results: Sequence[ScenarioResult]) -> ET.ElementTree:
    root = ET.Element("testsuites", {"name": "ussdsim scenarios"})
    suites = [_suite(r) for r in results]
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    root.extend(suites)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[ScenarioResult], path: str | Path) -> None:
    junit_tree(results).write(path, encoding="utf-8", xml_declaration=True)
