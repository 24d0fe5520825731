"""spark-submit entry: generate synthetic raw event files (see shopperlake.generate)."""

import sys

from shopperlake.generate import main

if __name__ == "__main__":
    sys.exit(main())
