"""spark-submit entry: train (see shopperlake.ml.train)."""

import sys

from shopperlake.ml.train import main

if __name__ == "__main__":
    sys.exit(main())
