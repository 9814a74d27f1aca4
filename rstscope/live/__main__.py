"""``python -m rstscope.live capture|watch ...`` (the same commands as ``rstscope capture``)."""

from rstscope.live.cli import main

if __name__ == "__main__":
    main()
