"""The reference SASRec of the movie-ratings comparison: RecBole's SASRec (PyTorch), trained
and ranked on exactly the leave-one-out split of ``bench/report_sasrec_movielens.py``.

Runs in its own venv (``make reference``: torch and recbole, whose pins are not the stack's);
``report_sasrec_movielens.py`` calls it. Input: ``steps.csv`` (user_id, item_id, position:
every user's items in the suite's order, 1..n). RecBole reads them with the position as its
time field, so its own leave-one-out split (``LS: valid_and_test``, time order) holds the same
targets: the last item is the test target, the one before the validation target, training
sees the rest; the script checks every target against the steps.

The network is RecBole's ``SASRec`` with its default hyper-parameters (2 blocks, 2 heads, 64
dimensions, inner 256, dropout 0.5, GELU, Adam 0.001) and ``--max-len`` items. Two ways to
train it:

* ``--trainer positions`` (default): next-item cross-entropy over the whole catalogue at
  every position of each user's training steps (the SASRec paper's and the suite's way: one
  sequence per user, batch 128), validation NDCG@10 every 5 epochs, early stopping after 5
  evaluations without a gain, the best weights kept.
* ``--trainer recbole``: RecBole's own ``Trainer`` (every prefix a training sequence, the
  loss at its last position only, batch 2048). Measured here: about 190 s per epoch on the 2
  cores (each prefix runs the whole network for one target), too slow to train to
  convergence in a benchmark.

RecBole's own full-ranking evaluation of sequential models does not remove the user's
history, so the ranks are computed here the suite's way: every catalogue item scored, the
target's earlier items removed, ties counted against the target where the other item comes
first. Output: ``recbole_ranks.csv`` (user_id, split, rank 0-based) and
``recbole_summary.json``.

    .reference/venv/bin/python bench/reference_sasrec_recbole.py --work DIR [--epochs 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

DATASET = "loo"


def write_atomic(work: Path, steps: pd.DataFrame) -> Path:
    folder = work / "recbole" / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    out = steps.rename(
        columns={
            "user_id": "user_id:token",
            "item_id": "item_id:token",
            "position": "timestamp:float",
        }
    )
    out.to_csv(folder / f"{DATASET}.inter", sep="\t", index=False)
    return folder.parent


def positions_batch(seqs: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``s_1 .. s_{m-1}`` and targets ``s_2 .. s_m`` of each training sequence (its
    latest ``max_len``), left-aligned and padded with 0 at the end, as RecBole's sequences."""
    items = np.zeros((len(seqs), max_len), np.int64)
    targets = np.zeros((len(seqs), max_len), np.int64)
    for r, s in enumerate(seqs):
        x, y = s[:-1][-max_len:], s[1:][-max_len:]
        items[r, : len(x)] = x
        targets[r, : len(y)] = y
    return torch.from_numpy(items), torch.from_numpy(targets)


def all_positions(model: SASRec, items: torch.Tensor) -> torch.Tensor:
    """RecBole's ``SASRec.forward`` without its final gather: the output at every position."""
    position_ids = torch.arange(items.size(1), dtype=torch.long).unsqueeze(0).expand_as(items)
    x = model.item_embedding(items) + model.position_embedding(position_ids)
    x = model.dropout(model.LayerNorm(x))
    mask = model.get_attention_mask(items)
    return model.trm_encoder(x, mask, output_all_encoded_layers=True)[-1]


def ranks_of(
    model: SASRec, loader: object, split: str, drop: int, history: dict[str, np.ndarray],
    dataset: object,
) -> list[tuple[str, str, int]]:  # fmt: skip
    """The target's 0-based rank among every item but the user's earlier ones."""
    rows = []
    model.eval()
    for batch in loader:  # type: ignore[attr-defined]
        interaction = batch[0]
        with torch.no_grad():
            scores = model.full_sort_predict(interaction).view(len(interaction), -1).numpy()
        users = dataset.id2token("user_id", interaction["user_id"].numpy())  # type: ignore[attr-defined]
        targets = interaction["item_id"].numpy()
        for r, user in enumerate(users):
            items = history[str(user)]
            if items[-drop] != targets[r]:
                raise SystemExit(f"RecBole's {split} target of user {user} is not ours")
            s = scores[r].astype(np.float64)
            s[0] = -np.inf
            s[items[: len(items) - drop]] = -np.inf
            st = s[targets[r]]
            ties = (s == st) & (np.arange(len(s)) < targets[r])
            rows.append((str(user), split, int(((s > st) | ties).sum())))
    return rows


def ndcg_at_10(rows: list[tuple[str, str, int]]) -> float:
    rank = np.array([r[2] for r in rows], dtype=np.float64)
    return float(np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0).mean())


def train_positions(
    model: SASRec, history: dict[str, np.ndarray], valid: object, dataset: object,
    args: argparse.Namespace,
) -> dict[str, float]:  # fmt: skip
    """Every position a target; the best validation NDCG@10 of the checks every 5 epochs."""
    seqs = [list(h[:-2]) for h in history.values() if len(h) >= 4]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=0)
    rng = np.random.default_rng(args.seed)
    best, best_epoch, best_state, waited = -1.0, 0, None, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(seqs))
        for start in range(0, len(order), args.batch_size):
            chosen = [seqs[i] for i in order[start : start + args.batch_size]]
            items, targets = positions_batch(chosen, args.max_len)
            out = all_positions(model, items)
            logits = out @ model.item_embedding.weight.T
            loss = loss_fn(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 5 and epoch != args.epochs:
            continue
        value = ndcg_at_10(ranks_of(model, valid, "validation", 2, history, dataset))
        print(f"epoch {epoch}: loss {float(loss):.4f}, validation NDCG@10 {value:.4f}", flush=True)
        if value > best:
            best, best_epoch, waited = value, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= args.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    return {"best_validation_ndcg@10": best, "best_epoch": float(best_epoch),
            "epochs_run": float(epoch)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True)
    parser.add_argument("--trainer", choices=["positions", "recbole"], default="positions")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5, help="evaluations (every 5 epochs)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    work = Path(args.work)
    steps = pd.read_csv(work / "steps.csv", dtype={"user_id": str, "item_id": str})
    steps = steps.sort_values(["user_id", "position"], kind="stable")
    data_path = write_atomic(work, steps)
    config = Config(
        model="SASRec",
        dataset=DATASET,
        config_dict={
            "data_path": str(data_path),
            "checkpoint_dir": str(work / "recbole" / "saved"),
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "user_inter_num_interval": None,
            "item_inter_num_interval": None,
            "MAX_ITEM_LIST_LENGTH": args.max_len,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "mode": "full",
                "group_by": "user",
            },
            "metrics": ["Hit", "NDCG"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "epochs": args.epochs,
            "stopping_step": args.patience,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "reproducibility": True,
            "use_gpu": False,
            "show_progress": False,
            "worker": 0,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    # every user's items in order, as RecBole's internal ids (for the history and the checks)
    history = {
        u: np.asarray(dataset.token2id("item_id", list(g["item_id"])))
        for u, g in steps.groupby("user_id", sort=False)
    }
    started = time.monotonic()
    if args.trainer == "positions":
        trained = train_positions(model, history, valid_data, dataset, args)
    else:
        trainer = Trainer(config, model)
        best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        checkpoint = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
        model.load_state_dict(checkpoint["state_dict"])
        trained = {"best_validation_ndcg@10_unmasked": float(best_valid)}
    seconds = time.monotonic() - started
    rows = ranks_of(model, valid_data, "validation", 2, history, dataset)
    rows += ranks_of(model, test_data, "test", 1, history, dataset)
    ranks = pd.DataFrame(rows, columns=["user_id", "split", "rank"])
    ranks.to_csv(work / "recbole_ranks.csv", index=False)
    summary = {
        "trainer": args.trainer,
        "train_seconds": seconds,
        **trained,
        "epochs_max": args.epochs,
        "max_len": args.max_len,
        "batch_size": args.batch_size,
        "users": int(steps["user_id"].nunique()),
        "items": int(dataset.item_num - 1),
        "test_ndcg@10": ndcg_at_10([r for r in rows if r[1] == "test"]),
    }
    (work / "recbole_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
