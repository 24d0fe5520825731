"""SASRec learns a planted order pattern that order-free and last-item models cannot.

Each sequence holds n (4..9) distinct random items of a 30-item catalogue; the item that comes
next is ``succ(second-to-last item)`` for a fixed random permutation ``succ``. Only attention
to the previous position can find it: the last item says nothing about it, and the set of
items does not say which one was second to last. Two order-free or order-poor references are
fitted on the same training rows, by counting, independently of the model:

- bag of items: score(c) = Σ over the history's items h of count(h in history, target c);
- last item: score(c) = count(last item, target c) (a first-order Markov chain).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from shopperlake.seqmodel.sasrec import SasRecParams, Vocab, fit_local, scores

pytestmark = pytest.mark.training
N_ITEMS, LENGTH = 30, 10


def planted(rng: np.random.Generator, succ: np.ndarray, rows: int) -> tuple[np.ndarray, ...]:
    """(items, types, targets, target) left-padded to LENGTH; the target only at the end."""
    items = np.zeros((rows, LENGTH), np.int32)
    targets = np.zeros((rows, LENGTH), np.int32)
    target = np.zeros(rows, np.int32)
    for r in range(rows):
        n = int(rng.integers(4, LENGTH))
        seq = rng.choice(np.arange(1, N_ITEMS + 1), size=n, replace=False)
        items[r, LENGTH - n :] = seq
        target[r] = succ[seq[-2]]
        targets[r, -1] = target[r]
    types = (items > 0).astype(np.int32)  # one event type
    return items, types, targets, target


# negatives 8: the sampled softmax with logQ correction (8 of the 30 items per batch) learns the
# same pattern as the full one; mixed_float16 (the GPU path, here on the CPU: 16-bit blocks,
# float32 logits, Keras' loss scaling, the sampled softmax's own train step) learns it too
# (slow: float16 is emulated on a CPU, 9x the time; test_runner_precision runs it by default)
@pytest.mark.parametrize(
    ("negatives", "precision"),
    [(0, "float32"), (8, "float32"), pytest.param(8, "mixed_float16", marks=pytest.mark.slow)],
)
def test_attention_finds_the_item_two_steps_back(negatives: int, precision: str) -> None:
    rng = np.random.default_rng(3)
    succ = np.zeros(N_ITEMS + 1, np.int32)
    succ[1:] = rng.permutation(np.arange(1, N_ITEMS + 1))
    train_items, train_types, train_targets, train_target = planted(rng, succ, 4000)
    test_items, test_types, _, test_target = planted(rng, succ, 500)

    vocab = Vocab(N_ITEMS, 1, np.zeros(N_ITEMS + 1, np.int32))
    params = SasRecParams(max_len=LENGTH, dim=32, blocks=1, heads=1, dropout=0.0, epochs=40,
                          batch_size=128, learning_rate=0.005, negatives=negatives,
                          precision=precision)  # fmt: skip
    model = fit_local(vocab, params, train_items, train_types, train_targets)
    assert model.item_emb.compute_dtype == (
        "float16" if precision == "mixed_float16" else "float32"
    )
    assert model.item_emb.embeddings.dtype == "float32"  # variables stay float32
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored after the fit
    s = scores(model, test_items, test_types)
    s[:, 0] = -np.inf
    sasrec_hit1 = float(np.mean(np.argmax(s, axis=1) == test_target))

    # the references, counted on the training rows
    pair = np.zeros((N_ITEMS + 1, N_ITEMS + 1))  # history item → target
    last = np.zeros((N_ITEMS + 1, N_ITEMS + 1))  # last item → target
    for row, t in zip(train_items, train_target, strict=True):
        seen = row[row > 0]
        pair[seen, t] += 1
        last[seen[-1], t] += 1
    bag_hits, last_hits = 0, 0
    for row, t in zip(test_items, test_target, strict=True):
        seen = row[row > 0]
        bag = pair[seen].sum(axis=0)
        bag[0] = -1
        bag_hits += int(np.argmax(bag) == t)
        markov = last[seen[-1]].copy()
        markov[0] = -1
        last_hits += int(np.argmax(markov) == t)
    bag_hit1, last_hit1 = bag_hits / len(test_target), last_hits / len(test_target)

    assert sasrec_hit1 >= 0.9, (sasrec_hit1, bag_hit1, last_hit1)
    assert bag_hit1 <= 0.4 and last_hit1 <= 0.2, (bag_hit1, last_hit1)


def test_scores_do_not_depend_on_the_left_padding() -> None:
    """``scores`` drops the columns that are padding in every row before encoding: the same
    histories padded to the model's full width, or padded per row inside a narrower batch,
    score the same (padding is masked in attention and zeroed)."""
    from shopperlake.seqmodel.sasrec import build_model

    rng = np.random.default_rng(4)
    p = SasRecParams(max_len=LENGTH, dim=16, blocks=2, heads=2, dropout=0.0)
    model = build_model(Vocab(N_ITEMS, 2, np.zeros(N_ITEMS + 1, np.int32)), p)
    lengths = [3, 1, 4, 2]
    wide = np.zeros((len(lengths), LENGTH), np.int32)
    for r, n in enumerate(lengths):
        wide[r, LENGTH - n :] = rng.integers(1, N_ITEMS + 1, n)
    types = (wide > 0).astype(np.int32) * 2
    batch = scores(model, wide, types)  # trimmed to the longest history (4 columns)
    for r in range(len(lengths)):
        one = scores(model, wide[r : r + 1], types[r : r + 1])  # trimmed to n columns
        np.testing.assert_allclose(batch[r], one[0], rtol=1e-4, atol=1e-5)
    # against the untrimmed encoder over all LENGTH positions
    full = np.asarray(model.encode({"items": wide, "types": types}, training=False))[:, -1, :]
    np.testing.assert_allclose(batch, full @ model.item_emb.embeddings.numpy().T,
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_sampling_proposal_is_the_target_share_plus_one() -> None:
    """log Q by hand: counts (padding, a, b, c) = (5, 3, 1, 0) → (a, b, c) + 1 = (4, 2, 1) of 7;
    padding is never drawn (its count is ignored)."""
    from shopperlake.seqmodel.sasrec import log_q

    got = log_q(Vocab(3, 1, np.zeros(4, np.int32)), np.array([5, 3, 1, 0]))
    np.testing.assert_allclose(np.exp(got[1:]), [4 / 7, 2 / 7, 1 / 7], rtol=1e-6)
    assert got[0] <= -1e8
    uniform = log_q(Vocab(3, 1, np.zeros(4, np.int32)), None)
    np.testing.assert_allclose(np.exp(uniform[1:]), [1 / 3] * 3, rtol=1e-6)


def test_retrieval_removes_every_seen_item_not_only_the_encoded_tail() -> None:
    """A history of 25 distinct items through a model that sees the latest 10: with
    ``keep_seen`` false none of the 25 is recommended (the 15 older ones are outside the
    encoder's window but still seen), and the top 5 come from the other 5 items; unknown
    item ids in the history are skipped. With ``keep_seen`` true the seen items may come back."""
    import pandas as pd

    from shopperlake.seqmodel.retrieval import top_next_items
    from shopperlake.seqmodel.sasrec import build_model

    p = SasRecParams(max_len=LENGTH, dim=16, blocks=1, heads=1, dropout=0.0)
    model = build_model(Vocab(N_ITEMS, 7, np.zeros(N_ITEMS + 1, np.int32)), p)
    ids = np.array([f"i{n}" for n in range(1, N_ITEMS + 1)], dtype=object)
    index = {v: n + 1 for n, v in enumerate(ids)}
    history = [f"i{n}" for n in range(1, 26)] + ["not-in-catalogue"]
    pdf = pd.DataFrame({"user_id": ["u"], "item_ids": [history],
                        "event_types": [["view"] * len(history)]})  # fmt: skip
    got = top_next_items(model, ids, index, pdf, p, n=10, keep_seen=False)
    assert sorted(got["item_id"]) == [f"i{n}" for n in range(26, 31)]  # only 5 unseen remain
    assert list(got["rank"]) == [1, 2, 3, 4, 5]
    kept = top_next_items(model, ids, index, pdf, p, n=N_ITEMS, keep_seen=True)
    assert len(kept) == N_ITEMS
