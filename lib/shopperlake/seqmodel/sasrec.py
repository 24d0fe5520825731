"""SASRec (Kang & McAuley 2018) in TensorFlow/Keras: causal self-attention over a user's item steps.

Input per position: item embedding (scaled by sqrt(dim)) + event-type embedding + category
embedding (looked up from the item) + learned position embedding. ``blocks`` pre-norm
Transformer blocks (multi-head self-attention that sees only earlier positions and never the
left padding, then a position-wise feed-forward layer; residuals and dropout), a final layer
norm. The output at position t scores every item of the catalogue as the item of step t + 1
through the item embedding itself (tied weights): ``logits = h_t · E_itemᵀ``.

Loss: softmax cross-entropy over the full catalogue at every non-padding position (the
catalogues here hold thousands of items; a sampled softmax with logQ correction, as in the
two-tower, is what a catalogue of millions would need). Index 0 is padding and never scored.

Training runs on the shared Horovod runner (:mod:`shopperlake.training.runner`), fed by
Petastorm; :func:`fit_local` fits the same model in-process (tests on planted patterns).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopperlake.core.config import section_dataclass
from shopperlake.core.errors import ConfigError
from shopperlake.training import petastorm_io, runner

MODEL = "sasrec"


@dataclass(frozen=True)
class SasRecParams:
    """``sequences.sasrec`` of the config."""

    max_len: int = 50  # item steps the model sees (the latest ones)
    dim: int = 64
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.2
    epochs: int = 40
    batch_size: int = 64  # per Horovod process
    learning_rate: float = 0.001  # scaled by the number of processes
    num_proc: int = 2
    seed: int = 7
    k: int = 10  # cut-off of HR@k / NDCG@k
    top_n: int = 20  # next items per user written by score --model sasrec
    max_items: int = 50_000  # catalogue limit of the full softmax (batch x max_len x items)
    negatives: int = 0  # 0: full softmax; > 0: sampled softmax, that many shared negatives
    precision: str = "float32"  # float32, mixed_float16 (GPU), mixed_bfloat16, auto

    @classmethod
    def from_dict(cls, section: dict[str, Any], where: str = "sequences.sasrec") -> SasRecParams:
        params: SasRecParams = section_dataclass(cls, section, where)
        params.validate(where)
        return params

    def validate(self, where: str = "sequences.sasrec") -> None:
        checks = [
            (self.max_len >= 2, "max_len must be >= 2"),
            (
                self.dim >= 2 and self.blocks >= 1 and self.heads >= 1,
                "dim >= 2, blocks, heads >= 1",
            ),
            (self.dim % self.heads == 0, f"dim ({self.dim}) must be a multiple of heads"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (self.learning_rate > 0 and self.num_proc >= 1, "learning_rate > 0, num_proc >= 1"),
            (self.k >= 1 and self.top_n >= 1, "k and top_n must be >= 1"),
            (self.max_items >= 1, "max_items must be >= 1"),
            (self.negatives >= 0, "negatives must be >= 0 (0: full softmax)"),
            (
                self.precision in runner.PRECISIONS,
                f"precision must be one of {', '.join(runner.PRECISIONS)}, got "
                f"'{self.precision}'",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{where}: {message}")


@dataclass(frozen=True)
class Vocab:
    """Sizes of the embedding tables (index 0 = padding / unknown in each) and the category
    index of every item index."""

    items: int
    types: int
    item_category: np.ndarray  # (items + 1,) int32

    @property
    def categories(self) -> int:
        return int(self.item_category.max(initial=0))


def log_q(vocab: Vocab, counts: np.ndarray | None) -> np.ndarray:
    """(items + 1,) log sampling probabilities of the sampled softmax: each item's share of
    the training targets (+1, so every item can be drawn), padding never (-1e9); uniform
    without counts."""
    c = np.ones(vocab.items + 1, np.float64) if counts is None else counts.astype(np.float64) + 1
    c[0] = 0.0
    out = np.full(vocab.items + 1, -1e9, np.float32)
    out[1:] = np.log(c[1:] / c[1:].sum())
    return out


def build_model(
    vocab: Vocab, p: SasRecParams, counts: np.ndarray | None = None, ages: int = 0
) -> Any:
    """The Keras model: ``{"items": (B, L) int32, "types": (B, L) int32}`` → (B, L, items + 1)
    logits of the next item at every position (column 0, padding, at -1e9). With ``ages > 0``
    the inputs also hold ``"ages"`` (B, L) int32 in ``0 .. ages - 1`` (an event's age bucket,
    see :mod:`shopperlake.seqmodel.heads`), embedded and added like the event type.

    With ``p.negatives > 0`` training uses a sampled softmax instead of the full one: per
    batch, ``negatives`` items drawn from the training targets' frequencies (``counts``,
    item-index space) shared by every position; the target's and the negatives' logits are
    corrected by ``- log Q(item)`` (logQ correction: the softmax over the sample then
    estimates the full one without favouring frequent items) and a negative equal to the
    position's target is masked. Scoring is the same either way (every item).

    Under a mixed-precision policy (``p.precision``, set by the caller) the blocks compute in
    16 bits; the logits, the -1e9 of padding and masked negatives, and the losses stay in
    float32 (-1e9 is -inf in float16)."""
    import tensorflow as tf

    layers = tf.keras.layers
    length, d = p.max_len, p.dim

    class SasRec(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__(name="sasrec")
            self.item_emb = layers.Embedding(vocab.items + 1, d, name="item_embedding")
            self.type_emb = layers.Embedding(vocab.types + 1, d, name="type_embedding")
            self.cat_emb = layers.Embedding(vocab.categories + 1, d, name="category_embedding")
            self.pos_emb = layers.Embedding(length, d, name="position_embedding")
            self.age_emb = layers.Embedding(ages, d, name="age_embedding") if ages else None
            self.cat_table = tf.constant(vocab.item_category, dtype=tf.int32)
            self.drop = layers.Dropout(p.dropout)
            self.attn = [
                layers.MultiHeadAttention(p.heads, d // p.heads, dropout=p.dropout, name=f"attn{b}")
                for b in range(p.blocks)
            ]
            self.ffn = [
                tf.keras.Sequential(
                    [
                        layers.Dense(d, activation="relu"),
                        layers.Dropout(p.dropout),
                        layers.Dense(d),
                    ],
                    name=f"ffn{b}",
                )
                for b in range(p.blocks)
            ]
            self.norm1 = [layers.LayerNormalization(epsilon=1e-8) for _ in range(p.blocks)]
            self.norm2 = [layers.LayerNormalization(epsilon=1e-8) for _ in range(p.blocks)]
            self.final = layers.LayerNormalization(epsilon=1e-8)
            self.causal = tf.cast(tf.linalg.band_part(tf.ones((length, length)), -1, 0), tf.bool)
            self.log_q = tf.constant(log_q(vocab, counts))

        def train_step(self, data: Any) -> Any:
            if p.negatives == 0:
                return super().train_step(data)
            x, y, sw = tf.keras.utils.unpack_x_y_sample_weight(data)
            y = tf.cast(y, tf.int32)
            w = tf.cast(y > 0, tf.float32) if sw is None else tf.cast(sw, tf.float32)
            neg = tf.cast(tf.random.categorical(self.log_q[None, :], p.negatives)[0], tf.int32)
            with tf.GradientTape() as tape:
                h = tf.cast(self.encode(x, training=True), tf.float32)  # (B, L, d)
                pos = tf.reduce_sum(h * self.embed32(y), axis=-1) - tf.gather(self.log_q, y)
                other = tf.einsum("bld,kd->blk", h, self.embed32(neg))
                other = other - tf.gather(self.log_q, neg)[None, None, :]
                hit = tf.equal(y[:, :, None], neg[None, None, :])
                other = tf.where(hit, tf.constant(-1e9, other.dtype), other)
                logits = tf.concat([pos[:, :, None], other], axis=-1)
                per = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(y), logits)
                loss = tf.reduce_sum(per * w) / tf.maximum(tf.reduce_sum(w), 1.0)
            # a LossScaleOptimizer (mixed_float16) scales the loss inside minimize
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
            return {"loss": loss}

        def embed32(self, ids: Any) -> Any:
            """Item embeddings in float32 whatever the policy computes in."""
            return tf.cast(self.item_emb(ids), tf.float32)

        def encode(self, inputs: Any, training: bool | None = None) -> Any:
            """(B, T, dim) for left-padded (B, T) inputs, T <= max_len: the last T of the
            max_len positions (padding is masked, so trimming left padding changes nothing)."""
            items, types = inputs["items"], inputs["types"]
            first = length - tf.shape(items)[1]
            valid = items > 0
            x = self.item_emb(items) * math.sqrt(d)
            x = x + self.type_emb(types) + self.cat_emb(tf.gather(self.cat_table, items))
            if self.age_emb is not None:
                x = x + self.age_emb(inputs["ages"])
            x = x + self.pos_emb(tf.range(first, length))[None, :, :]
            keep = tf.cast(valid, x.dtype)[:, :, None]
            x = self.drop(x, training=training) * keep
            mask = tf.logical_and(self.causal[None, first:, first:], valid[:, None, :])
            for b in range(p.blocks):
                h = self.norm1[b](x)
                x = x + self.drop(
                    self.attn[b](h, h, attention_mask=mask, training=training), training=training
                )
                h = self.norm2[b](x)
                x = (x + self.drop(self.ffn[b](h, training=training), training=training)) * keep
            return self.final(x)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            h = tf.cast(self.encode(inputs, training=training), tf.float32)
            table = tf.cast(self.item_emb.embeddings, tf.float32)  # autocast: float16 here
            logits = tf.einsum("bld,nd->bln", h, table)
            pad = tf.one_hot(0, vocab.items + 1, on_value=-1e9, off_value=0.0)
            return logits + pad[None, None, :]

        @tf.function(
            input_signature=[
                {
                    "items": tf.TensorSpec([None, None], tf.int32),
                    "types": tf.TensorSpec([None, None], tf.int32),
                }
            ],
            reduce_retracing=True,
        )
        def last_state(self, inputs: Any) -> Any:
            """(B, dim): the representation at the last position (inputs are left-padded);
            one traced graph for every batch size and width."""
            return self.encode(inputs, training=False)[:, -1, :]

    model = SasRec()
    model(dummy(length, ages > 0), training=False)  # create the weights
    return model


def dummy(length: int, ages: bool = False) -> dict[str, np.ndarray]:
    """One all-padding input row (builds a model's weights)."""
    names = ("items", "types", "ages") if ages else ("items", "types")
    return {n: np.zeros((1, length), np.int32) for n in names}


def compile_args() -> dict[str, Any]:
    import tensorflow as tf

    return {"loss": tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)}


def restore(vocab: Vocab, p: SasRecParams, weights: list[np.ndarray]) -> Any:
    model = build_model(vocab, p)
    model.set_weights(weights)
    return model


def item_table(model: Any) -> np.ndarray:
    """(items + 1, dim) float32 item embeddings (row 0: padding)."""
    return np.asarray(model.item_emb.embeddings.numpy(), dtype=np.float32)


def scores(model: Any, items: np.ndarray, types: np.ndarray) -> np.ndarray:
    """(rows, items + 1) next-item scores after left-padded histories (column 0 = padding).
    Columns that are padding in every row are dropped before encoding (the same result,
    less work when histories are shorter than ``max_len``)."""
    used = np.flatnonzero((items > 0).any(axis=0))
    first = int(used[0]) if len(used) else items.shape[1] - 1
    inputs = {
        "items": np.ascontiguousarray(items[:, first:], dtype=np.int32),
        "types": np.ascontiguousarray(types[:, first:], dtype=np.int32),
    }
    h = np.asarray(model.last_state(inputs), dtype=np.float32)
    return h @ item_table(model).T


def fit_local(
    vocab: Vocab, p: SasRecParams, items: np.ndarray, types: np.ndarray, targets: np.ndarray
) -> Any:
    """Fit in this process (no Horovod) on left-padded (rows, max_len) arrays: the same model
    and loss as the Horovod fit (:func:`task`)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(p.seed)
    counts = np.bincount(targets.ravel(), minlength=vocab.items + 1)
    with runner.precision_policy(p.precision):
        model = build_model(vocab, p, counts)
        model.compile(optimizer=tf.keras.optimizers.Adam(p.learning_rate), **compile_args())
        model.fit(
            {"items": items, "types": types},
            targets,
            sample_weight=(targets > 0).astype(np.float32),
            batch_size=p.batch_size,
            epochs=p.epochs,
            shuffle=True,
            verbose=0,
        )
    return model


def task(vocab: Vocab, p: SasRecParams, counts: np.ndarray | None = None) -> runner.KerasTask:
    """SASRec's part of the shared Horovod fit: rows of wide ``items_i``, ``types_i``,
    ``targets_i`` columns (see :func:`shopperlake.training.petastorm_io.wide`); ``counts``:
    the training targets per item index (the sampled softmax's proposal)."""
    length = p.max_len

    def build() -> tuple[Any, None]:
        return build_model(vocab, p, counts), None

    def inputs() -> Callable[[Any], Any]:
        import tensorflow as tf

        names = {c: petastorm_io.wide_names(c, length) for c in ("items", "types", "targets")}

        @tf.autograph.experimental.do_not_convert
        def to_inputs(batch: Any) -> tuple[dict[str, Any], Any, Any]:
            cols = {c: tf.cast(petastorm_io.stack(batch, n), tf.int32) for c, n in names.items()}
            target = cols["targets"]
            weight = tf.cast(target > 0, tf.float32)
            return {"items": cols["items"], "types": cols["types"]}, target, weight

        return to_inputs

    def result(model: Any, parts: None) -> list[np.ndarray]:
        return [np.asarray(w) for w in model.get_weights()]

    return runner.KerasTask(build, compile_args, inputs, result)


def load_version(path: Path) -> tuple[Vocab, SasRecParams, list[np.ndarray], list[str]]:
    """(vocabulary, params, weights, item ids) of a registered version."""
    params = json.loads((path / "params.json").read_text())
    vocab_json = json.loads((path / "vocab.json").read_text())
    vocab = Vocab(len(vocab_json["item_ids"]), int(vocab_json["types"]),
                  np.asarray(vocab_json["item_category"], np.int32))  # fmt: skip
    with np.load(path / "weights.npz") as z:
        weights = [z[f"arr_{i}"] for i in range(len(z.files))]
    return vocab, SasRecParams(**params["sasrec"]), weights, list(vocab_json["item_ids"])
