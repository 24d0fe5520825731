"""spark-submit entry: build_training_set (see shopperlake.ml.training_set)."""

import sys

from shopperlake.ml.training_set import main

if __name__ == "__main__":
    sys.exit(main())
