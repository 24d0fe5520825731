"""spark-submit entry of `score_returns` (`./submit.sh --list`: its inputs and outputs)."""

import sys

from shopperlake.jobs import run

if __name__ == "__main__":
    sys.exit(run("score_returns"))
