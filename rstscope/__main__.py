"""``python -m rstscope``: same entry point as the console script."""

from rstscope.cli import main

if __name__ == "__main__":
    main()
