"""spark-submit entry of `build_sequences` (`./submit.sh --list`: its inputs and outputs)."""

import sys

from shopperlake.jobs import run

if __name__ == "__main__":
    sys.exit(run("build_sequences"))
