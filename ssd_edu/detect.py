"""``python -m ssd_edu.detect``: the command line lives in :mod:`ssd_edu.cli.detect`."""

import sys

from ssd_edu.cli.detect import main

if __name__ == "__main__":
    sys.exit(main())
