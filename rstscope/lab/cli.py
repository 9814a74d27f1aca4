"""``rstscope lab``: list and run reset scenarios.  The only lab module importing click.

Errors are raised as :class:`rstscope.errors.RstscopeError` subclasses; the
main CLI turns them into one line and an exit code (77 no root, 69 missing tool).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from rstscope.errors import UsageError
from rstscope.lab.runner import VANTAGES, run_scenario
from rstscope.lab.scenarios import COMMON_DEFAULTS, SCENARIOS
from rstscope.lab.session import remove_leftovers, require_root


def _fmt(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@click.group()
def lab() -> None:
    """Reproduce each kind of TCP reset with real stacks and middleboxes (root, Linux)."""


@lab.command("list")
def list_cmd() -> None:
    """List scenarios, what each does, and its parameters with defaults."""
    width = max(len(n) for n in SCENARIOS)
    for name, scen in SCENARIOS.items():
        click.echo(f"{name:<{width}}  {scen.description}")
        if scen.defaults:
            params = " ".join(f"{k}={_fmt(v)}" for k, v in scen.defaults.items())
            click.echo(f"{'':<{width}}    defaults: {params}")
    common = " ".join(f"{k}={_fmt(v)}" for k, v in COMMON_DEFAULTS.items())
    click.echo(f"\nEvery scenario also takes: {common}")


def _parse_sets(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@lab.command("run")
@click.argument("scenario")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a parameter (repeatable), e.g. --set conntrack_timeout_s=60.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for captures, keylog, labels and manifest.")
@click.option("--vantage", "vantages", multiple=True, type=click.Choice(list(VANTAGES)),
              help="Vantage capture(s) to write (repeatable; default: all).")
def run_cmd(scenario: str, sets: Sequence[str], out_dir: str, vantages: Sequence[str]) -> None:
    """Run SCENARIO in fresh namespaces and write captures with truth labels."""
    result = run_scenario(scenario, _parse_sets(sets), out_dir,
                          vantages=tuple(vantages) or tuple(VANTAGES))
    for v in result.vantages:
        labels = result.labels(v.name)
        who = ", ".join(sorted({f"{lb['emitter']} ({lb['role']})" for lb in labels})) or "none"
        click.echo(f"{v.pcap}  {v.rst_count} RST  emitted by: {who}")
    click.echo(f"{result.manifest}")


@lab.command("cleanup")
def cleanup_cmd() -> None:
    """Remove lab namespaces (and their processes) left by a killed run."""
    require_root()
    removed = remove_leftovers()
    click.echo(f"removed {len(removed)} namespace(s){': ' + ' '.join(removed) if removed else ''}")
