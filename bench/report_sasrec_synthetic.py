"""SASRec against EASE and popularity on a synthetic lake with planted order, through
./submit.sh (local env), leave-one-out with full ranking (README "Sequences").

``generate --sequential-share S`` (that share of human sessions walks a category path: each
view after the first is the next item of its category), ``ingest``, ``build_sequences`` and
``train --model sasrec`` as of the last day; the job prints HR@10 / NDCG@10 with 95 %
bootstrap intervals over users and the paired intervals of SASRec minus each baseline, and
stores them in ``gold.model_metrics``. Wall times of each step are printed at the end.

``--compare-negatives N`` trains twice on the same lake and split, the full softmax and the
sampled one with N shared negatives (log Q corrected), and prints both models' HR@10 /
NDCG@10 with the paired interval of sampled minus full over the same users (from each
version's ``loo_ranks.parquet``) and their Horovod training times: the quality/cost trade of
the sampled softmax on a large catalogue (``--items``). ``--reuse`` keeps the last run's lake.

    .venv/bin/python bench/report_sasrec_synthetic.py [--users 3000] [--items 500] [--days 60]
        [--sequential-share 0.5] [--epochs N] [--compare-negatives N] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
START = dt.date(2024, 1, 1)
K = 10


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


def latest_version(lake: Path) -> Path:
    return sorted((lake / "models" / "sasrec").glob("v*/loo_ranks.parquet"))[-1].parent


def compare_versions(full: Path, sampled: Path, negatives: int) -> None:
    """Both versions' test HR@K / NDCG@K with intervals, sampled minus full paired."""
    from shopperlake.training.bootstrap import mean_stat
    from shopperlake.training.model_metrics import BootstrapSettings, compare, comparison_table

    stats = {}
    users = None
    for name, version in (("full_softmax", full), (f"sampled_{negatives}", sampled)):
        r = pd.read_parquet(version / "loo_ranks.parquet")
        r = r[(r["split"] == "test") & (r["algorithm"] == "sasrec")].sort_values("user_id")
        if users is not None and not np.array_equal(users, r["user_id"].to_numpy()):
            raise SystemExit("the two versions ranked different users")
        users = r["user_id"].to_numpy()
        rank = r["rank"].to_numpy(dtype=np.float64)
        hit = (rank < K).astype(np.float64)
        ndcg = np.where(rank < K, 1.0 / np.log2(rank + 2.0), 0.0)
        stats[name] = {f"hr@{K}": mean_stat(hit), f"ndcg@{K}": mean_stat(ndcg)}
        seconds = json.loads((version / "params.json").read_text())["horovod_seconds"]
        print(f"{name} ({version.name}): Horovod training {seconds:.0f} s")
    assert users is not None
    comparison = compare(stats, len(users), f"sampled_{negatives}", "loo_test", BootstrapSettings())
    print(comparison_table(comparison, [f"hr@{K}", f"ndcg@{K}"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--sequential-share", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--compare-negatives", dest="negatives", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep the last run's lake")
    parser.add_argument("--workdir", default=str(REPO / "bench" / "work" / "sasrec"))
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    last = START + dt.timedelta(days=args.days - 1)
    work = Path(args.workdir)
    raw, lake = work / "raw", work / "lake"
    common = ["--lake", str(lake), "--log-level", "WARNING"]
    as_of = ["--as-of", str(last)]
    times: dict[str, float] = {}
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
        times["generate"] = run(
            ["./submit.sh", "generate", "--users", str(args.users), "--items", str(args.items),
             "--days", str(args.days), "--seed", "42", "--start-date", str(START),
             "--sequential-share", str(args.sequential_share), "--output", str(raw), *common],
            quiet=True,
        )  # fmt: skip
        times["ingest"] = run(
            ["./submit.sh", "ingest", "--source", "synthetic", "--input", str(raw), *as_of,
             *common], quiet=True,
        )  # fmt: skip
        times["build_sequences"] = run(["./submit.sh", "build_sequences", *as_of, *common])
    epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
    train = ["./submit.sh", "train", "--model", "sasrec", *as_of, *epochs, *common]
    times["train --model sasrec"] = run(train)
    if args.negatives:
        full = latest_version(lake)
        times[f"train, {args.negatives} negatives"] = run(
            [*train, "--set", f"sequences.sasrec.negatives={args.negatives}"]
        )
        compare_versions(full, latest_version(lake), args.negatives)
    print("\n" + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
