"""``build_segments --as-of D``: the gold.user_profiles snapshot of D → ``gold.user_segments``,
``gold.segment_summary`` and ``gold.segment_centroids`` (each replaced for D only).

Cluster ids are matched to the centroids of the latest earlier snapshot in
``gold.segment_centroids``, so the same kind of user keeps the same id from run to run;
re-running D matches against the same earlier snapshot and gives the same tables.
Prints a readable summary of the segments and clusters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import SEGMENT_CENTROIDS
from shopperlake.segments.model import (
    CLUSTER,
    RFM,
    RFM_DESCRIPTIONS,
    Clustering,
    KMeansParams,
    centroid_rows,
    describe_cluster,
    feature_frame,
    fit_clusters,
    label_frame,
    match_cluster_ids,
    name_rfm_segments,
    parse_rfm_map,
    rfm_scores,
    segment_summary,
)

log = logging.getLogger(__name__)

PROFILES = "gold.user_profiles"
SEGMENTS = "gold.user_segments"
SUMMARY = "gold.segment_summary"
CENTROIDS = "gold.segment_centroids"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="do not print the segment summary to stdout"
    )


def previous_centroids(lake: Lake, as_of: dt.date) -> tuple[dt.date | None, list[Row]]:
    """Centroid rows of the latest snapshot before ``as_of`` (none: empty)."""
    if not lake.exists(CENTROIDS):
        return None, []
    earlier = lake.read(CENTROIDS).where(F.col("as_of_date") < F.lit(as_of))
    latest = earlier.agg(F.max("as_of_date")).first()
    if latest is None or latest[0] is None:
        return None, []
    rows = earlier.where(F.col("as_of_date") == F.lit(latest[0])).orderBy("cluster_id").collect()
    return latest[0], rows


def stable_ids(clustering: Clustering, previous: list[Row]) -> tuple[list[int], bool]:
    """Ids for the new clusters, matched to ``previous`` when it used the same features."""
    usable = [r for r in previous if list(r["features"]) == clustering.features]
    if previous and not usable:
        log.warning("previous centroids used other features: cluster ids start afresh")
    if not usable:
        return match_cluster_ids(clustering.centroids_z, clustering.sizes), False
    prev_raw = np.array([list(r["centroid"]) for r in usable], dtype=float)
    prev_z = clustering.standardise(prev_raw)
    ids = match_cluster_ids(
        clustering.centroids_z, clustering.sizes, [int(r["cluster_id"]) for r in usable], prev_z
    )
    return ids, True


def format_summary(rows: Sequence[Row], as_of: dt.date) -> str:
    """The segment summary as a plain-text table (RFM segments, then clusters)."""
    out = [f"Segments as of {as_of}"]
    for kind, title in ((RFM, "RFM segments"), (CLUSTER, "Clusters")):
        part = sorted((r for r in rows if r["kind"] == kind), key=lambda r: -r["users"])
        if not part:
            continue
        out += [
            "",
            f"{title}:",
            f"  {'segment':<22}{'users':>8}{'share':>8}{'recency':>9}{'orders':>8}{'spend':>10}"
            "  description",
        ]
        for r in part:
            name = r["segment"] if kind == RFM else f"cluster {r['segment']}"
            out.append(
                f"  {name:<22}{r['users']:>8,}{r['share']:>8.1%}"
                f"{_num(r['median_recency_days']):>9}{_num(r['mean_frequency']):>8}"
                f"{_num(r['mean_monetary_total']):>10}  {r['description'] or ''}"
            )
    out.append("  (recency: median days since last purchase; orders, spend: means per user)")
    return "\n".join(out)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("build_segments needs --as-of YYYY-MM-DD (the profile snapshot date)")
    as_of = ctx.as_of
    cfg = ctx.cfg
    rules = parse_rfm_map(cfg.get("segments.rfm_map") or {})
    params = KMeansParams.from_config(cfg.section("segments.kmeans"))
    profiles = ctx.lake.read(PROFILES, required=False).where(F.col("as_of_date") == F.lit(as_of))
    profiles = profiles.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        users = profiles.count()
        if users == 0:
            raise InputError(
                f"no {PROFILES} snapshot for {as_of}: run build_profiles --as-of {as_of} first"
            )
        no_purchase = str(cfg.require("segments.no_purchase_segment"))
        other = str(cfg.require("segments.other_segment"))
        named = name_rfm_segments(profiles, rfm_scores(profiles), rules, no_purchase, other)
        features = feature_frame(profiles, params.features).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            clustering = fit_clusters(features, params)
            matched_date, previous = previous_centroids(ctx.lake, as_of)
            ids, matched = stable_ids(clustering, previous)
            z = clustering.centroids_z
            descriptions = [
                describe_cluster(list(z[i]), clustering.features, params.describe_top)
                for i in range(clustering.k)
            ]
            labels = label_frame(ctx.spark, ids, descriptions)
            clusters = clustering.assignments.join(F.broadcast(labels), on="label").drop("label")
            segments = named.join(clusters, on="user_id", how="left").withColumn(
                "as_of_date", F.lit(as_of)
            )
            summary = segment_summary(
                segments,
                profiles,
                features,
                as_of,
                {
                    **RFM_DESCRIPTIONS,
                    no_purchase: "no purchase before the end of the as-of day",
                    other: "no rule of segments.rfm_map matched",
                },
            )
            summary_rows = summary.collect()  # a few rows: computed once, written and printed
            centroids = ctx.spark.createDataFrame(
                centroid_rows(
                    clustering, ids, descriptions, as_of, matched_date if matched else None
                ),
                SEGMENT_CENTROIDS,
            )
            where = {"as_of_date": as_of}
            ctx.lake.overwrite_where(SEGMENTS, segments, where)
            ctx.lake.overwrite_where(
                SUMMARY, ctx.spark.createDataFrame(summary_rows, summary.schema), where
            )
            ctx.lake.overwrite_where(CENTROIDS, centroids, where)
        finally:
            features.unpersist()
    finally:
        profiles.unpersist()
    ctx.run.rows_read = users
    ctx.run.rows_written = users
    ctx.run.metrics.update({"users": float(users), "k": float(clustering.k)})
    if clustering.silhouette is not None:
        ctx.run.metrics["silhouette"] = clustering.silhouette
    log.info(
        "segments as of %s: %d users, k=%d (silhouette %s), ids %s matched to %s",
        as_of, users, clustering.k, clustering.silhouette, ids, matched_date if matched else None,
    )  # fmt: skip
    if not ctx.args.quiet:
        print(format_summary(summary_rows, as_of), flush=True)
    return users


BUILD_SEGMENTS = Job(
    name="build_segments",
    description="RFM segments and stable KMeans clusters from the gold.user_profiles snapshot "
    "--as-of.",
    add_args=add_args,
    body=body,
    reads=(PROFILES,),
    writes=(SEGMENTS, SUMMARY, CENTROIDS),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return BUILD_SEGMENTS.main(argv, spark)
