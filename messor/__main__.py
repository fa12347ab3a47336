"""``python -m messor``: the same command line as the ``messor`` console script."""

import sys

from messor.cli import main

if __name__ == "__main__":
    sys.exit(main())
