"""SASRec against EASE and popularity on a synthetic lake with planted order, through
./submit.sh (local env), leave-one-out with full ranking (README "Sequences").

``generate --sequential-share S`` (that share of human sessions walks a category path: each
view after the first is the next item of its category), ``ingest``, ``build_sequences`` and
``train --model sasrec`` as of the last day; the job prints HR@10 / NDCG@10 with 95 %
bootstrap intervals over users and the paired intervals of SASRec minus each baseline, and
stores them in ``gold.model_metrics``. Wall times of each step are printed at the end.

    .venv/bin/python bench/report_sasrec_synthetic.py [--users 3000] [--items 500] [--days 60]
        [--sequential-share 0.5] [--epochs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2024, 1, 1)


def run(cmd: list[str], quiet: bool = False) -> float:
    started = time.monotonic()
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-6000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    if not quiet:
        print(done.stdout, end="", flush=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--sequential-share", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--workdir", default=str(REPO / "bench" / "work" / "sasrec"))
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    last = START + dt.timedelta(days=args.days - 1)
    work = Path(args.workdir)
    raw, lake = work / "raw", work / "lake"
    shutil.rmtree(work, ignore_errors=True)
    common = ["--lake", str(lake), "--log-level", "WARNING"]
    as_of = ["--as-of", str(last)]
    times = {
        "generate": run(["./submit.sh", "generate", "--users", str(args.users), "--items",
                         str(args.items), "--days", str(args.days), "--seed", "42",
                         "--start-date", str(START), "--sequential-share",
                         str(args.sequential_share), "--output", str(raw), *common],
                        quiet=True),
        "ingest": run(["./submit.sh", "ingest", "--source", "synthetic", "--input", str(raw),
                       *as_of, *common], quiet=True),
        "build_sequences": run(["./submit.sh", "build_sequences", *as_of, *common]),
    }  # fmt: skip
    epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
    times["train --model sasrec"] = run(
        ["./submit.sh", "train", "--model", "sasrec", *as_of, *epochs, *common]
    )
    print("\n" + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
