"""spark-submit entry of `detect_anomalies` (`./submit.sh --list`: its inputs and outputs)."""

import sys

from shopperlake.jobs import run

if __name__ == "__main__":
    sys.exit(run("detect_anomalies"))
