"""rstscope.plot.backend: matplotlib loaded for a command that only writes files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("matplotlib")

from rstscope.plot.backend import without_artist_docstrings  # noqa: E402


def test_a_fresh_process_loads_matplotlib_without_the_property_tables() -> None:
    # A new interpreter: in this one matplotlib's classes are already made.
    code = textwrap.dedent("""
        import io
        import matplotlib.artist
        from rstscope.plot.backend import new_figure, without_artist_docstrings

        kwdoc = matplotlib.artist.kwdoc
        with without_artist_docstrings():
            fig = new_figure(3, 2)
            fig.subplots().plot([0, 1], [1, 0], label="a line")
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
        from matplotlib.lines import Line2D
        assert matplotlib.artist.kwdoc is kwdoc, "kwdoc restored"
        assert "zorder: float" not in (Line2D.set.__doc__ or ""), Line2D.set.__doc__
        assert "linewidth" in str(__import__("inspect").signature(Line2D.set))
        assert buf.getvalue()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_nothing_changes_once_matplotlib_is_loaded() -> None:
    import matplotlib.artist
    import matplotlib.figure  # noqa: F401

    kwdoc = matplotlib.artist.kwdoc
    with without_artist_docstrings():
        assert matplotlib.artist.kwdoc is kwdoc
    assert matplotlib.artist.kwdoc is kwdoc
