"""The recommender's ``sasrec`` source: SASRec (:mod:`shopperlake.seqmodel.sasrec`) trained on
the order of what each user did before the cutoff, its next items as candidates.

Data: the point-in-time event sequences of the serving cutoff (the same builder, tie rule and
``sequences.max_len`` / ``sequences.event_types`` as ``gold.user_sequences``), as item steps:
distinct items in the order first met (``steps: distinct``), or every event, repeats kept
(``steps: events``: next-basket data, where most of a basket is bought again). Every step is
training data here (no leave-one-out: the recommender's protocols hold out by time or by last
order, after the cutoff): inputs
``s_1 .. s_{n-1}``, targets ``s_2 .. s_n``, for users with >= 2 steps. Trained with Horovod on
the executors, Petastorm-fed, like the two-tower. Candidates: every user to serve with a
sequence (at least ``sequences.min_events`` item events, as in ``gold.user_sequences``) and at
least one known item step gets the top ``candidates`` next items (``recommender.sasrec.keep_seen``:
whether the history's items may be candidates; the hybrid's rules then drop what the protocol
excludes); other users get none from this source and are served by the others and the
popularity fill.

Needs ordered events: the ``time`` and ``last_order`` protocols and ``score_recommender``
have them; the ``random`` / ``stratified`` protocols split bags of interactions and cannot
weight this source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.errors import ConfigError, InputError
from shopperlake.seqmodel import loo, sasrec
from shopperlake.seqmodel.retrieval import SCORED, next_item_scorer
from shopperlake.seqmodel.sasrec import SasRecParams
from shopperlake.training import runner

log = logging.getLogger(__name__)
WHERE = "recommender.sasrec"


@dataclass(frozen=True)
class SourceParams:
    """``recommender.sasrec``: the model's settings (as ``sequences.sasrec``) and
    ``keep_seen``."""

    model: SasRecParams
    keep_seen: bool = True
    steps: str = "distinct"  # distinct: items in the order first met; events: repeats kept

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> SourceParams:
        rest = dict(section)
        keep_seen = rest.pop("keep_seen", True)
        steps = rest.pop("steps", "distinct")
        if not isinstance(keep_seen, bool):
            raise ConfigError(f"{WHERE}.keep_seen must be true or false, got {keep_seen!r}")
        if steps not in ("distinct", "events"):
            raise ConfigError(f"{WHERE}.steps must be distinct or events, got {steps!r}")
        return cls(SasRecParams.from_dict(rest, WHERE), keep_seen, str(steps))


def recommend_sasrec(
    spark: SparkSession,
    sequences: DataFrame | None,
    users: DataFrame,
    section: dict[str, Any],
    n: int,
    cache_dir: str,
) -> DataFrame:
    """(user_id, item_id, score): the top ``n`` next items of every user in ``users`` with item
    steps in ``sequences`` (rows of :func:`shopperlake.seqmodel.build.user_sequences`)."""
    if sequences is None:
        raise ConfigError(
            "recommender.blend.sasrec > 0 needs ordered events: use split.protocol time or "
            "last_order (random / stratified split bags of interactions), or set it to 0"
        )
    p = SourceParams.from_dict(section)
    steps = loo.item_steps(sequences, min_steps=1, distinct=p.steps == "distinct").cache()
    try:
        indexed = loo.index_steps(spark, steps.where(F.col("n") >= 2))
        vocab = indexed.vocab
        if vocab.items == 0:
            raise InputError("sasrec source: no user has two item steps before the cutoff")
        if vocab.items > p.model.max_items and p.model.negatives == 0:
            raise InputError(
                f"sasrec source: {vocab.items:,} items before the cutoff, more than "
                f"{WHERE}.max_items ({p.model.max_items:,}) for a full softmax: raise it or "
                f"set {WHERE}.negatives > 0 (sampled softmax)"
            )
        train = loo.training_rows(indexed.rows, p.model.max_len, held_out=0)
        train = train.select("items", "types", "targets")
        widths = {c: p.model.max_len for c in ("items", "types", "targets")}
        m = p.model
        counts = loo.target_counts(train, vocab.items) if m.negatives else None
        fitted = runner.fit(
            spark, train, widths, sasrec.task(vocab, m, counts),
            runner.Distributed(m.num_proc, m.batch_size, m.epochs, m.learning_rate, m.seed,
                               m.precision),
            cache_dir, what="sasrec source",
        )  # fmt: skip
        log.info("sasrec source: %d items, %d training rows, %.0f s of Horovod",
                 vocab.items, fitted.train_rows, fitted.seconds)  # fmt: skip
        shipped = spark.sparkContext.broadcast((vocab, m, fitted.value, indexed.item_ids))
        histories = steps.join(users.select("user_id"), "user_id").select(
            "user_id", "item_ids", "event_types"
        )
        try:
            scorer = next_item_scorer(shipped, f"rec-sasrec-{time.time_ns()}", n, p.keep_seen)
            out = histories.mapInPandas(scorer, SCORED).select("user_id", "item_id", "score")
            out = out.cache()
            log.info("sasrec source: %d candidate rows", out.count())
        finally:
            shipped.unpersist()
        return out
    finally:
        steps.unpersist()
