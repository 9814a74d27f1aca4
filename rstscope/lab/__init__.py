"""The reset lab: real TCP stacks and middleboxes in network namespaces, with truth labels.

Library use (root, Linux)::

    from rstscope.lab import SCENARIOS, run_scenario
    result = run_scenario("haproxy-timeout", {"proxy_timeout_s": "3"}, "out/")
    result.labels("client")   # who emitted each RST seen at the client

See docs/lab.md.  ``rstscope.lab.cli`` holds the click commands; nothing else
here imports click.
"""

from __future__ import annotations

# Importing the family registers its scenarios in SCENARIOS.
from rstscope.lab import everyday as _everyday  # noqa: F401
from rstscope.lab import twins as _twins  # noqa: F401
from rstscope.lab.runner import VANTAGES, LabResult, VantageResult, run_scenario
from rstscope.lab.scenarios import SCENARIOS, Plan, Scenario

__all__ = ["SCENARIOS", "VANTAGES", "LabResult", "Plan", "Scenario", "VantageResult",
           "run_scenario"]
