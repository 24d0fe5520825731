"""spark-submit entry of `train_sasrec` (`./submit.sh --list`: its inputs and outputs)."""

import sys

from shopperlake.jobs import run

if __name__ == "__main__":
    sys.exit(run("train_sasrec"))
