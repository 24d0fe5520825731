"""spark-submit entry: score (see shopperlake.ml.score)."""

import sys

from shopperlake.ml.score import main

if __name__ == "__main__":
    sys.exit(main())
