"""Regenerate the probe results the unprivileged tests read (root, real lab).

    sudo .venv/bin/python -m tests.probe.make_fixtures

Each file is a real ``rstscope probe --format json`` run against the lab box
that also produced the matching capture in ``samples/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rstscope.lab.probe_lab import probe_lab

DATA = Path(__file__).parent / "data"
IDLE = ["--idle", "2.5", "--wait", "0.5", "--max-hops", "8"]
CASES = {
    # name: (box, node, probe arguments)
    "fw-reject": ("reject", "fw", IDLE),
    "l4lb": ("l4lb", "lb", IDLE),
    "nat-rebind": ("snat", "fw", IDLE),
    "dpi-rtr": ("inject", "rtr", ["--trigger", "sni", "--sni", "blocked.lab.test",
                                  "--wait", "0.5", "--max-hops", "8"]),
    "fw-drop": ("drop", "fw", IDLE),
}


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, (box, node, args) in CASES.items():
        with probe_lab(box=box, node=node) as lab:
            doc = lab.run_probe(args)
        (DATA / f"{name}.probe.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(name, doc["outcome"], doc["reset_hop"], doc["verdict"])


if __name__ == "__main__":
    main()
