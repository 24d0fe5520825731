"""spark-submit entry of `backfill`: the daily chain for each day of a range (backfill.py)."""

import sys

from shopperlake.backfill import main

if __name__ == "__main__":
    sys.exit(main())
