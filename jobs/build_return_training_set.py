"""spark-submit entry of `build_return_training_set` (`./submit.sh --list`: inputs, outputs)."""

import sys

from shopperlake.jobs import run

if __name__ == "__main__":
    sys.exit(run("build_return_training_set"))
