"""One meaning per module name: no two packages of rstscope hold a module of the same name.

Issue 15 found ``frames``, ``records``, ``timeouts`` and ``capture`` each
meaning different things in different packages (pandas tables vs. frame
decoding, result records vs. the reader's record table, ...), and a
``lab/wire.py`` of socket helpers beside the ``rstscope.wire`` container
codec.  A reader who knows one of them then misreads the other.  A package
counts as a name too (``rstscope/wire/`` and ``lab/wire.py`` clashed).

Only the names in ``SAME_MEANING`` may repeat, each with the one meaning it has
in every package that holds it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rstscope"

# name -> the one meaning it has wherever it appears (the reason it may repeat).
SAME_MEANING = {
    "__init__": "the package itself",
    "__main__": "`python -m <package>`: the package's command line",
    "cli": "the package's click commands (its part of the `rstscope` command line)",
    "render": "the package's command output: text table or JSON of its result",
    "runner": "drives one run of the package's experiment end to end (lab scenario, probe)",
}


def module_names(root: Path) -> dict[str, dict[Path, list[str]]]:
    """Basename (module or package) -> {owning package: where it appears}.

    A module belongs to its directory's package, a package to itself, so the
    package's own main module (``redact/redact.py``) is one owner, not a clash.
    """
    seen: dict[str, dict[Path, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        seen[path.stem][path.parent].append(str(path.relative_to(root.parent)))
    for path in sorted(p for p in root.rglob("*") if p.is_dir() and (p / "__init__.py").exists()):
        if path != root:
            seen[path.name][path].append(str(path.relative_to(root.parent)) + "/")
    return seen


def clashes(root: Path) -> dict[str, list[str]]:
    return {name: [p for places in owners.values() for p in places]
            for name, owners in module_names(root).items()
            if len(owners) > 1 and name not in SAME_MEANING}


def test_no_module_name_means_two_things() -> None:
    found = clashes(PACKAGE)
    assert found == {}, "rename so each module name has one meaning (or say why it is the same):\n" + \
        "\n".join(f"{n}: {', '.join(p)}" for n, p in sorted(found.items()))


def test_the_check_sees_a_clash(tmp_path: Path) -> None:
    # Positive control: a module named like a package elsewhere, and a repeated
    # module name, are both reported; an allowed name is not.
    root = tmp_path / "pkg"
    for rel in ("__init__.py", "wire/__init__.py", "lab/__init__.py", "lab/wire.py",
                "a/__init__.py", "a/frames.py", "b/__init__.py", "b/frames.py",
                "a/cli.py", "b/cli.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "b" / "b.py").write_text("")  # the package's own main module: no clash
    assert sorted(clashes(root)) == ["frames", "wire"]


def test_allowed_names_are_in_use() -> None:
    # An allow-list entry no longer needed is removed, so the list stays a list of reasons.
    names = module_names(PACKAGE)
    assert [n for n in SAME_MEANING if len(names.get(n, [])) < 2] == []
