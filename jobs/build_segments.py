"""spark-submit entry: RFM segments and clusters --as-of (see shopperlake.build_segments)."""

import sys

from shopperlake.build_segments import main

if __name__ == "__main__":
    sys.exit(main())
