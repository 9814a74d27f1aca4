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


@lab.command("sweep")
@click.option("--seed", type=int, required=True, help="Sweep seed: the same seed draws the same cases.")
@click.option("--count", type=int, required=True, help="Number of cases to draw and run.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the cases' captures, labels and manifests.")
@click.option("--jobs", type=int, default=16, show_default=True,
              help="Cases run at once (each is its own namespaces; most of a case is waiting).")
@click.option("--start", type=int, default=0, show_default=True,
              help="Index of the first case (extend a sweep without redoing it).")
@click.option("--max-timeout-s", type=int, default=350, show_default=True,
              help="Longest timeout a case may draw (long cases take that long to run).")
@click.option("--families", type=click.Choice(["default", "twins"]), default="default",
              show_default=True,
              help="Scenario set: 'twins' draws the everyday look-alikes of the middlebox "
                   "scenarios beside them (docs/lab.md, 'Calibration corpus').")
def sweep_cmd(seed: int, count: int, out_dir: str, jobs: int, start: int,
              max_timeout_s: int, families: str) -> None:
    """Run COUNT random lab cases of SEED: path lengths, firewall placement, device TTLs,
    timeouts on and off the catalog, IPv4/IPv6 (docs/lab.md, "Sweeps")."""
    # lazy: the sweep machinery loads only for 'lab sweep'
    from rstscope.lab.sweep import CaseOutcome, run_sweep

    def progress(oc: CaseOutcome, done: int, total: int) -> None:
        what = (f"{sum(oc.rsts.values())} RST" if oc.ok else f"FAILED: {oc.error}")
        click.echo(f"[{done}/{total}] {oc.stem}  {oc.wall_s:g}s  {what}")

    outcomes = run_sweep(seed, count, out_dir, jobs=jobs, start=start,
                         max_timeout_s=max_timeout_s, families=families,
                         progress=progress)
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} cases ok, "
               f"{sum(sum(o.rsts.values()) for o in outcomes)} labelled RSTs in {out_dir}")


@lab.command("cleanup")
def cleanup_cmd() -> None:
    """Remove lab namespaces (and their processes) left by a killed run."""
    require_root()
    removed = remove_leftovers()
    click.echo(f"removed {len(removed)} namespace(s){': ' + ' '.join(removed) if removed else ''}")
