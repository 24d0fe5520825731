"""Deterministic synthetic e-commerce clickstream, generated in parallel by Spark.

``shopperlake generate --users N --items M --days D --seed S --output PATH`` writes JSON-lines
text under ``PATH``: ``events/`` (canonical events, see design.md), ``items/`` (catalog) and
``users/`` (attributes plus a fake ``email`` that ingest must drop).

How it scales: users are cut into chunks of ``generate.chunk_users`` (1,000); ``spark.range``
over the chunk ids feeds ``mapInPandas``, and each chunk is generated with vectorised numpy from
``default_rng([seed, stream, chunk_id])``. Nothing but counts reaches the driver, and the output
depends only on the parameters (not on Spark partitioning): ``--files K`` only groups whole
chunks into ``min(K, chunks)`` files, each holding its chunks in order.

What is planted (for the profile, churn, recommender and anomaly jobs downstream):

- Zipf-like item popularity (exponent 1.1) within categories of Zipf-like size; per-category
  lognormal prices, one price per item, identical in ``items/`` and ``events/``;
- users with a favourite category, a price sensitivity (expensive items are carted less often
  by sensitive users) and a lognormal activity level; 20 % sign up during the period;
- sessions per day ~ Poisson with a weekly profile (weekends ~30 % busier) and a diurnal hour
  profile; a session is an optional search, 1 + Poisson(2.5) views (35 % clicked), cart adds
  (price dependent), removals (15 %), checkout of the remaining cart in 55 % of sessions (cart
  abandonment otherwise); returns (7 %) and reviews (15 %, lower ratings when returned) days
  after the purchase;
- churners (``churn_share``): activity decays linearly to 25 % and stops at a random day
  (``stop_day``, exclusive); bots (``bot_share``): 20 + Poisson(40) views per session, uniform
  hours and items, no clicks, carts or purchases. :func:`planted_users` returns the truth;
- ``malformed_rate`` of event lines broken on purpose (:data:`MALFORMED_KINDS`);
- with ``abuse_share`` above 0, labelled abuse for the anomaly detectors on top of genuine
  histories and a purchase-feed outage (:mod:`shopperlake.synthetic.abuse`); the truth goes
  to ``truth/`` (:func:`write_truth`), never into ``events/``.
- with ``sequential_share`` above 0, that share of human sessions walks a category path: the
  first view is drawn as usual, each later view is the next item of the same category in
  item-id order (cyclic), planted order for the sequence models (README "Sequences").

Expected volume: about 100 events per non-bot user over 180 days (0.126 sessions per user-day
of about 5 events, less for churners and late sign-ups), so ``--users 100000 --items 10000
--days 180`` gives about 10.3 million event lines (about 0.4 million of them bot views at the
default 0.5 % bots), 2.1 GB of text (the time it takes is in the README). A chunk of
1,000 users holds about 100,000 events (a few tens of MB of pandas memory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext, parse_date
from shopperlake.core.config import Config
from shopperlake.core.errors import InputError
from shopperlake.core.schemas import EVENT_TYPES
from shopperlake.synthetic import abuse

log = logging.getLogger(__name__)

DAY = 86_400
HOUR = 3_600
ITEM_CHUNK = 10_000

# Random streams: default_rng([seed, stream, chunk]) keeps each part independent of the others.
STREAM_CATALOG, STREAM_USERS, STREAM_EVENTS, STREAM_MALFORMED, STREAM_PATHS = 0, 1, 2, 3, 4

VIEW, CLICK, SEARCH, ADD, REMOVE, PURCHASE, RETURN, REVIEW = (
    EVENT_TYPES.index(name)
    for name in (
        "view", "click", "search", "add_to_cart", "remove_from_cart", "purchase", "return",
        "review",
    )
)  # fmt: skip

DEVICES = ("mobile", "desktop", "tablet")
DEVICE_P = (0.55, 0.35, 0.10)
DESKTOP = 1
CHANNELS = ("web", "app", "email", "ads", "social")
CHANNEL_P = (0.38, 0.30, 0.10, 0.14, 0.08)
WEB, APP = 0, 1
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "IN", "CA", "AU")
COUNTRY_P = (0.30, 0.12, 0.11, 0.09, 0.06, 0.06, 0.04, 0.04, 0.06, 0.06, 0.03, 0.03)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_P = (0.16, 0.28, 0.22, 0.16, 0.11, 0.07)
FIRST_NAMES = ("alex", "sam", "maria", "li", "noah", "emma", "omar", "yuki", "ana", "tom")
CATEGORY_NAMES = (
    "electronics", "books", "fashion", "home", "beauty", "sports", "toys", "grocery", "garden",
    "automotive", "music", "movies", "health", "pets", "baby", "office", "jewelry", "shoes",
    "tools", "games",
)  # fmt: skip
ADJECTIVES = ("cheap", "best", "new", "premium", "wireless", "small", "large", "eco")
BRANDS = (
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "soylent",
    "tyrell", "cyberdyne", "wonka", "oscorp", "aperture",
)  # fmt: skip

# Behaviour (see the module docstring); SESSION_RATE calibrates the volume.
ZIPF_EXPONENT = 1.1
CATEGORY_EXPONENT = 0.8
SESSION_RATE = 0.126  # sessions per user-day for an average user on an average weekday
BOT_SESSION_RATE = 0.1
WEEKDAY_FACTOR = np.array([0.92, 0.90, 0.93, 0.97, 1.05, 1.30, 1.25])  # Monday .. Sunday
WEEKDAY_FACTOR = WEEKDAY_FACTOR / WEEKDAY_FACTOR.mean()
HOUR_WEIGHT = np.array(
    [0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.0, 1.4, 1.6, 1.7, 1.8,
     2.0, 1.9, 1.7, 1.6, 1.7, 1.9, 2.2, 2.6, 2.8, 2.6, 2.0, 1.3]
)  # fmt: skip
HOUR_P = HOUR_WEIGHT / HOUR_WEIGHT.sum()
ACTIVITY_SIGMA = 0.8
NEW_USER_SHARE = 0.2
CHURN_FLOOR = 0.25
SAME_DEVICE_P = 0.8
FAV_SESSION_P = 0.65
FOCUS_VIEW_P = 0.8
SEARCH_P = 0.35
QUERY_ADJ_P = 0.3
EXTRA_VIEWS = 2.5
BOT_MIN_VIEWS, BOT_EXTRA_VIEWS = 20, 40
CLICK_P = 0.35
CART_P, CART_CLICK_BONUS, CART_MAX_P = 0.08, 0.12, 0.6
PRICE_ELASTICITY = 1.5
REMOVE_P = 0.15
BUY_P = 0.55
RETURN_P, REVIEW_P = 0.07, 0.15
RETURN_DELAY, REVIEW_DELAY = 5.0, 7.0  # days after the purchase: 1 + / 2 + Poisson(mean)
GAP_MEAN = 40.0  # seconds between events of a session: 1 + Exponential(mean)
RATING_P = np.array([0.04, 0.06, 0.15, 0.35, 0.40])
RETURNED_RATING_P = np.array([0.35, 0.30, 0.20, 0.10, 0.05])

MALFORMED_KINDS = (
    "truncated_json",  # a proper prefix of the line: json.loads fails
    "unknown_event_type",
    "negative_price",
    "missing_user_id",
    "bad_ts",  # not an ISO-8601 timestamp
)
UNKNOWN_TYPES = ("pageview", "checkout_v2", "unknown")
BAD_TS = ("2024-02-30 25:61", "not-a-date", "", "13/45/2024 99:99:99")
EVENT_COLUMNS = (
    "event_id", "user_id", "session_id", "ts", "event_type", "item_id", "category", "price",
    "quantity", "order_id", "query", "rating", "device", "channel",
)  # fmt: skip
NULLABLE_EVENT_COLUMNS = (
    "user_id", "session_id", "item_id", "price", "quantity", "order_id", "query", "rating",
)  # fmt: skip


@dataclass(frozen=True)
class GenParams:
    """Everything the output depends on; invalid values raise :class:`InputError`."""

    users: int
    items: int
    days: int
    seed: int
    start_date: dt.date
    categories: int = 20
    malformed_rate: float = 0.001
    churn_share: float = 0.25
    bot_share: float = 0.005
    abuse_share: float = 0.0
    # share of human sessions that walk a category path: each view after the first is the
    # successor of the one before (``Catalog.successor``), planted order for sequence models
    sequential_share: float = 0.0
    files: int = 8
    chunk_users: int = 1000

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.users >= 1, f"--users must be at least 1, got {self.users}"),
            (self.days >= 1, f"--days must be at least 1, got {self.days}"),
            (self.seed >= 0, f"--seed must be a non-negative integer, got {self.seed}"),
            (self.categories >= 1, f"generate.categories must be >= 1, got {self.categories}"),
            (
                self.items >= self.categories,
                f"--items ({self.items}) must be at least generate.categories "
                f"({self.categories})",
            ),
            (self.files >= 1, f"--files must be at least 1, got {self.files}"),
            (
                0.0 <= self.sequential_share <= 1.0,
                f"--sequential-share must be in [0, 1], got {self.sequential_share}",
            ),
            (self.chunk_users >= 1, f"generate.chunk_users must be >= 1, got {self.chunk_users}"),
            (
                0.0 <= self.malformed_rate <= 0.5,
                f"--malformed-rate must be in [0, 0.5], got {self.malformed_rate}",
            ),
            (0.0 <= self.churn_share <= 1.0, f"churn_share must be in [0, 1]: {self.churn_share}"),
            (0.0 <= self.bot_share <= 1.0, f"bot_share must be in [0, 1]: {self.bot_share}"),
            (
                0.0 <= self.abuse_share <= 0.5,
                f"--abuse-share must be in [0, 0.5], got {self.abuse_share}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    @property
    def n_chunks(self) -> int:
        return -(-self.users // self.chunk_users)

    @property
    def n_item_chunks(self) -> int:
        return -(-self.items // ITEM_CHUNK)

    @property
    def end_date(self) -> dt.date:
        """First day without events (exclusive end of the period)."""
        return self.start_date + dt.timedelta(days=self.days)

    def chunk_bounds(self, chunk_id: int) -> tuple[int, int]:
        """Global user indices ``[lo, hi)`` of a chunk."""
        lo = chunk_id * self.chunk_users
        return lo, min(lo + self.chunk_users, self.users)


def _width(n: int, minimum: int) -> int:
    return max(minimum, len(str(max(n - 1, 0))))


def _zfill(numbers: np.ndarray, width: int) -> np.ndarray:
    """Numbers as str, zero-padded to at least ``width`` (``np.char.zfill`` alone truncates)."""
    text = np.asarray(numbers, dtype=np.int64).astype(str)
    return np.where(np.char.str_len(text) < width, np.char.zfill(text, width), text)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers, as an object array of str."""
    return np.char.add(prefix, _zfill(numbers, width)).astype(object)


def user_ids(params: GenParams, index: np.ndarray) -> np.ndarray:
    return _ids("u", index, _width(params.users, 6))


def item_ids(params: GenParams, index: np.ndarray) -> np.ndarray:
    return _ids("i", index, _width(params.items, 5))


def category_ids(params: GenParams, index: np.ndarray) -> np.ndarray:
    return _ids("c", index, _width(params.categories, 2))


@dataclass(frozen=True)
class Catalog:
    """Items and categories (arrays indexed by item / category number)."""

    item_id: np.ndarray
    category: np.ndarray
    price: np.ndarray
    brand: np.ndarray
    title: np.ndarray
    popularity: np.ndarray
    category_id: np.ndarray
    category_name: np.ndarray
    category_weight: np.ndarray
    category_median: np.ndarray
    sample_keys: np.ndarray
    sample_items: np.ndarray
    successor: np.ndarray  # the next item of the same category in item order (cyclic)

    def sample(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Items drawn by popularity within ``category``, given uniforms ``u`` in [0, 1)."""
        # sample_keys holds category + cumulative popularity share, in (c, c + 1] per category.
        target = category + np.minimum(u, 1.0 - 1e-9)
        return self.sample_items[np.searchsorted(self.sample_keys, target, side="right")]


def build_catalog(params: GenParams) -> Catalog:
    """The catalog of ``params`` (computed once per process and parameter set)."""
    return _catalog(params.seed, params.items, params.categories)


@functools.lru_cache(maxsize=4)
def _catalog(seed: int, items: int, categories: int) -> Catalog:
    rng = np.random.default_rng([seed, STREAM_CATALOG])
    cat_weight = (rng.permutation(categories) + 1.0) ** -CATEGORY_EXPONENT
    cat_weight /= cat_weight.sum()
    item_cat = rng.choice(categories, size=items, p=cat_weight)
    item_cat[:categories] = rng.permutation(categories)  # no empty category
    mu = rng.uniform(np.log(5.0), np.log(300.0), categories)
    sigma = rng.uniform(0.25, 0.7, categories)
    price = np.maximum(np.round(np.exp(rng.normal(mu[item_cat], sigma[item_cat])), 2), 0.99)
    popularity = (rng.permutation(items) + 1.0) ** -ZIPF_EXPONENT
    brand = np.array(BRANDS, dtype=object)[(item_cat * 5 + rng.integers(0, 6, items)) % len(BRANDS)]
    adjective = np.array(ADJECTIVES, dtype=object)[rng.integers(0, len(ADJECTIVES), items)]
    name = np.array(_category_names(categories), dtype=object)
    ids = _ids("i", np.arange(items), _width(items, 5))
    title = brand + " " + adjective + " " + name[item_cat] + " " + ids

    order = np.argsort(item_cat, kind="stable")
    cats_sorted = item_cat[order]
    csum = np.cumsum(popularity[order])
    group = np.arange(categories)
    start = np.searchsorted(cats_sorted, group, side="left")
    end = np.searchsorted(cats_sorted, group, side="right")
    before = np.concatenate([[0.0], csum])[start]
    total = csum[end - 1] - before
    share = (csum - before[cats_sorted]) / total[cats_sorted]
    share[end - 1] = 1.0
    median = pd.Series(price).groupby(item_cat).median().reindex(group).to_numpy()
    successor = np.empty(items, dtype=np.int64)  # order lists items by category, then index
    nxt = np.roll(order, -1)
    last_of_cat = np.append(cats_sorted[1:] != cats_sorted[:-1], True)
    successor[order] = np.where(last_of_cat, order[start[cats_sorted]], nxt)
    return Catalog(
        item_id=ids,
        category=item_cat,
        price=price,
        brand=brand,
        title=title,
        popularity=popularity / popularity.sum(),
        category_id=_ids("c", group, _width(categories, 2)),
        category_name=name,
        category_weight=cat_weight,
        category_median=median,
        sample_keys=cats_sorted + share,
        sample_items=order,
        successor=successor,
    )


def _category_names(categories: int) -> list[str]:
    base = len(CATEGORY_NAMES)
    return [
        CATEGORY_NAMES[c % base] + ("" if c < base else f" {c // base + 1}")
        for c in range(categories)
    ]


def user_traits(params: GenParams, chunk_id: int) -> pd.DataFrame:
    """Attributes and planted behaviour of the users of one chunk (one row per user).

    ``signup_day`` and ``stop_day`` count days from ``start_date``; a user has events only on
    days ``max(signup_day, 0) <= d < stop_day`` (``stop_day == days`` unless a churner).
    """
    lo, hi = params.chunk_bounds(chunk_id)
    n = hi - lo
    rng = np.random.default_rng([params.seed, STREAM_USERS, chunk_id])
    catalog = build_catalog(params)
    index = np.arange(lo, hi)
    new = rng.random(n) < NEW_USER_SHARE
    signup_day = np.where(new, rng.integers(0, params.days, n), -rng.integers(1, 731, n))
    activity = rng.lognormal(-0.5 * ACTIVITY_SIGMA**2, ACTIVITY_SIGMA, n)
    favourite = rng.choice(params.categories, n, p=catalog.category_weight)
    sensitivity = rng.beta(2.0, 2.0, n)
    device = rng.choice(len(DEVICES), n, p=DEVICE_P)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_P)
    age = rng.choice(len(AGE_BANDS), n, p=AGE_P)
    first_name = rng.integers(0, len(FIRST_NAMES), n)
    is_bot = rng.random(n) < params.bot_share
    churn_u, stop_u = rng.random(n), rng.random(n)

    first_day = np.maximum(signup_day, 0)
    span = params.days - first_day - 1  # churners stop on a day in [first_day + 1, days - 1]
    is_churner = (churn_u < params.churn_share) & ~is_bot & (span >= 1)
    stop_day = np.where(
        is_churner,
        first_day + 1 + np.floor(stop_u * np.maximum(span, 1)).astype(np.int64),
        params.days,
    )
    signup = np.datetime64(params.start_date) + signup_day.astype("timedelta64[D]")
    email = (
        np.array(FIRST_NAMES, dtype=object)[first_name] + "." + _ids("", index, 1) + "@example.com"
    )
    return pd.DataFrame(
        {
            "user_idx": index,
            "user_id": user_ids(params, index),
            "signup_day": signup_day,
            "signup_date": np.datetime_as_string(signup, unit="D").astype(object),
            "country": np.array(COUNTRIES, dtype=object)[country],
            "age_band": np.array(AGE_BANDS, dtype=object)[age],
            "email": email,
            "device": device,
            "favourite_category": favourite,
            "price_sensitivity": sensitivity,
            "activity": activity,
            "is_bot": is_bot,
            "is_churner": is_churner,
            "stop_day": stop_day,
        }
    )


def planted_users(params: GenParams) -> pd.DataFrame:
    """Per-user truth (bots, churners and their stop days, ...) for all users: cheap, pure."""
    return pd.concat([user_traits(params, c) for c in range(params.n_chunks)], ignore_index=True)


def planted_abuse(params: GenParams) -> pd.DataFrame:
    """The truth of :mod:`shopperlake.synthetic.abuse` for all users: one row per planted
    user (``user_idx, user_id, kind, anomaly_type, day, ring, date``): cheap, pure."""
    plans = [abuse.chunk_plan(params, user_traits(params, c), c) for c in range(params.n_chunks)]
    out = pd.concat(plans, ignore_index=True)
    out["date"] = [str(params.start_date + dt.timedelta(days=int(d))) for d in out["day"]]
    return out


def _sessions(
    params: GenParams, users: pd.DataFrame, cat: Catalog, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sessions of a chunk (Poisson per user-day), ordered by user and start time."""
    bot = users["is_bot"].to_numpy()
    stop = users["stop_day"].to_numpy()
    first = np.maximum(users["signup_day"].to_numpy(), 0)
    days = np.arange(params.days)
    weekday = WEEKDAY_FACTOR[(params.start_date.weekday() + days) % 7]
    progress = np.clip((days - first[:, None]) / np.maximum(stop - first, 1)[:, None], 0.0, 1.0)
    decay = np.where(
        users["is_churner"].to_numpy()[:, None], 1.0 - (1.0 - CHURN_FLOOR) * progress, 1.0
    )
    active = (days >= first[:, None]) & (days < stop[:, None])
    rate = np.where(
        bot[:, None],
        BOT_SESSION_RATE,
        SESSION_RATE * users["activity"].to_numpy()[:, None] * weekday * decay,
    )
    counts = rng.poisson(rate * active)
    su, sd = np.nonzero(counts)
    reps = counts[su, sd]
    user, day = np.repeat(su, reps), np.repeat(sd, reps)
    n = len(user)
    is_bot = bot[user]
    hour = np.where(is_bot, rng.integers(0, 24, n), rng.choice(24, n, p=HOUR_P))
    start = day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
    order = np.lexsort((start, user))
    user, start, is_bot = user[order], start[order], is_bot[order]

    device = np.where(
        rng.random(n) < SAME_DEVICE_P,
        users["device"].to_numpy()[user],
        rng.choice(len(DEVICES), n, p=DEVICE_P),
    )
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    channel = np.where((channel == APP) & (device == DESKTOP), WEB, channel)
    focus = np.where(
        rng.random(n) < FAV_SESSION_P,
        users["favourite_category"].to_numpy()[user],
        rng.choice(params.categories, n, p=cat.category_weight),
    )
    search = (rng.random(n) < SEARCH_P) & ~is_bot
    adjective = np.where(rng.random(n) < QUERY_ADJ_P, rng.integers(0, len(ADJECTIVES), n), -1)
    views = np.where(
        is_bot,
        BOT_MIN_VIEWS + rng.poisson(BOT_EXTRA_VIEWS, n),
        1 + rng.poisson(EXTRA_VIEWS, n),
    )
    buys = rng.random(n) < BUY_P
    return {
        "user": user,
        "start": start,
        "is_bot": is_bot,
        "ordinal": np.arange(n) - np.searchsorted(user, user, side="left"),
        "device": np.where(is_bot, DESKTOP, device),
        "channel": np.where(is_bot, WEB, channel),
        "focus": focus,
        "search": search,
        "adjective": adjective,
        "views": views,
        "buys": buys,
    }


def _session_events(
    users: pd.DataFrame, cat: Catalog, s: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """All events of the sessions plus later returns and reviews (unfiltered, unordered)."""
    n_s, n_v = len(s["user"]), int(s["views"].sum())
    v_sess = np.repeat(np.arange(n_s), s["views"])
    v_pos = np.arange(n_v) - np.repeat(np.cumsum(s["views"]) - s["views"], s["views"])
    v_bot = s["is_bot"][v_sess]
    v_cat = np.where(
        rng.random(n_v) < FOCUS_VIEW_P,
        s["focus"][v_sess],
        rng.choice(len(cat.category_id), n_v, p=cat.category_weight),
    )
    v_item = np.where(
        v_bot, rng.integers(0, len(cat.item_id), n_v), cat.sample(v_cat, rng.random(n_v))
    )
    if "path" in s:  # path sessions: every view after the first follows its predecessor
        walk = s["path"][v_sess]
        for k in range(1, int(v_pos.max(initial=0)) + 1):
            at = np.flatnonzero(walk & (v_pos == k))
            v_item[at] = cat.successor[v_item[at - 1]]
    clicked = (rng.random(n_v) < CLICK_P) & ~v_bot
    sensitivity = users["price_sensitivity"].to_numpy()[s["user"][v_sess]]
    ratio = np.clip(cat.category_median[cat.category[v_item]] / cat.price[v_item], 0.2, 5.0)
    p_cart = (CART_P + CART_CLICK_BONUS * clicked) * ratio ** (PRICE_ELASTICITY * sensitivity)
    carted = (rng.random(n_v) < np.minimum(p_cart, CART_MAX_P)) & ~v_bot
    qty_u = rng.random(n_v)
    v_qty = 1 + (qty_u > 0.8).astype(np.int64) + (qty_u > 0.95)
    c_view = np.flatnonzero(carted)
    removed = rng.random(len(c_view)) < REMOVE_P
    r_view = c_view[removed]
    p_view = c_view[~removed & s["buys"][v_sess[c_view]]]
    k_view = np.flatnonzero(clicked)
    q_sess = np.flatnonzero(s["search"])
    tail = 4 * s["views"]  # steps after the last view: removals, then checkout

    # (type, session, step within session, view index or -1)
    blocks = [
        (SEARCH, q_sess, np.zeros(len(q_sess), np.int64), np.full(len(q_sess), -1)),
        (VIEW, v_sess, 4 * v_pos + 1, np.arange(n_v)),
        (CLICK, v_sess[k_view], 4 * v_pos[k_view] + 2, k_view),
        (ADD, v_sess[c_view], 4 * v_pos[c_view] + 3, c_view),
        (REMOVE, v_sess[r_view], tail[v_sess[r_view]] + 1, r_view),
        (PURCHASE, v_sess[p_view], tail[v_sess[p_view]] + 2, p_view),
    ]
    e_type = np.concatenate([np.full(len(b[1]), b[0], np.int64) for b in blocks])
    e_sess = np.concatenate([b[1] for b in blocks]).astype(np.int64)
    e_step = np.concatenate([b[2] for b in blocks]).astype(np.int64)
    e_view = np.concatenate([b[3] for b in blocks]).astype(np.int64)
    n_e = len(e_type)
    order = np.lexsort((e_step, e_sess))
    sess_sorted = e_sess[order]
    first = np.ones(n_e, dtype=bool)
    first[1:] = sess_sorted[1:] != sess_sorted[:-1]
    gaps = np.where(first, 0, 1 + np.floor(rng.exponential(GAP_MEAN, n_e)).astype(np.int64))
    cum = np.cumsum(gaps)
    session_first = np.maximum.accumulate(np.where(first, np.arange(n_e), 0))
    e_ts = np.empty(n_e, dtype=np.int64)
    e_ts[order] = s["start"][sess_sorted] + cum - cum[session_first]

    n_p = len(p_view)
    p_ts = e_ts[n_e - n_p :]  # the purchase block comes last
    p_sess = v_sess[p_view]
    returned = rng.random(n_p) < RETURN_P
    reviewed = rng.random(n_p) < REVIEW_P
    ret_ts = p_ts + (1 + rng.poisson(RETURN_DELAY, n_p)) * DAY + rng.integers(0, DAY, n_p)
    rev_ts = p_ts + (2 + rng.poisson(REVIEW_DELAY, n_p)) * DAY + rng.integers(0, DAY, n_p)
    stars = np.where(
        returned, rng.choice(5, n_p, p=RETURNED_RATING_P), rng.choice(5, n_p, p=RATING_P)
    )
    n_ret, n_rev = int(returned.sum()), int(reviewed.sum())
    view = np.concatenate([e_view, p_view[returned], p_view[reviewed]])
    has_item = view >= 0
    item = np.where(has_item, v_item[np.maximum(view, 0)], -1) if n_v else view
    return {
        "type": np.concatenate([e_type, np.full(n_ret, RETURN), np.full(n_rev, REVIEW)]),
        "session": np.concatenate([e_sess, p_sess[returned], p_sess[reviewed]]),
        "ts": np.concatenate([e_ts, ret_ts[returned], rev_ts[reviewed]]),
        "item": item,
        "quantity": v_qty[np.maximum(view, 0)] if n_v else view,
        "rating": np.concatenate([np.zeros(n_e + n_ret, np.int64), stars[reviewed] + 1]),
    }


def chunk_events(params: GenParams, chunk_id: int) -> pd.DataFrame:
    """Clean canonical events of one chunk's users, ordered by user and time."""
    users = user_traits(params, chunk_id)
    cat = build_catalog(params)
    rng = np.random.default_rng([params.seed, STREAM_EVENTS, chunk_id])
    s = _sessions(params, users, cat, rng)
    if params.sequential_share > 0:  # its own stream: the default output stays as it was
        paths = np.random.default_rng([params.seed, STREAM_PATHS, chunk_id])
        s["path"] = (paths.random(len(s["user"])) < params.sequential_share) & ~s["is_bot"]
    e = _session_events(users, cat, s, rng)
    e_user = s["user"][e["session"]]
    # Churners stop at stop_day; nobody has events at or after the end of the period.
    keep = e["ts"] < users["stop_day"].to_numpy()[e_user] * DAY
    final = np.flatnonzero(keep)[np.lexsort((e["ts"][keep], e_user[keep]))]
    e = {key: value[final] for key, value in e.items()}
    e_user, e_sess, e_type = e_user[final], e["session"], e["type"]
    n = len(e_type)

    global_user = users["user_idx"].to_numpy()[s["user"]]
    suffix = np.char.add(
        np.char.add(_zfill(global_user, _width(params.users, 6)), "-"), _zfill(s["ordinal"], 4)
    )
    session_id = np.char.add("s", suffix).astype(object)
    order_id = np.char.add("o", suffix).astype(object)
    has_item = e["item"] >= 0
    item = np.maximum(e["item"], 0)
    in_session = (e_type != RETURN) & (e_type != REVIEW)
    has_qty = np.isin(e_type, (ADD, REMOVE, PURCHASE, RETURN))
    has_order = np.isin(e_type, (PURCHASE, RETURN))
    category = np.where(has_item, cat.category[item], s["focus"][e_sess])
    queries = np.array(
        [list(cat.category_name)]
        + [[f"{adj} {name}" for name in cat.category_name] for adj in ADJECTIVES],
        dtype=object,
    )
    stamp = np.datetime64(params.start_date, "s") + e["ts"].astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "event_id": _ids("e", chunk_id * 1_000_000_000 + np.arange(n), 15),
            "user_id": users["user_id"].to_numpy()[e_user],
            "session_id": _where_or_none(in_session, session_id[e_sess]),
            "ts": np.char.add(np.datetime_as_string(stamp, unit="s"), "Z").astype(object),
            "event_type": np.array(EVENT_TYPES, dtype=object)[e_type],
            "item_id": _where_or_none(has_item, cat.item_id[item]),
            "category": cat.category_id[category],
            "price": np.where(has_item, cat.price[item], np.nan),
            "quantity": pd.arrays.IntegerArray(
                np.where(has_qty, e["quantity"], 0).astype(np.int64), ~has_qty
            ),
            "order_id": _where_or_none(has_order, order_id[e_sess]),
            "query": _where_or_none(
                e_type == SEARCH, queries[s["adjective"][e_sess] + 1, category]
            ),
            "rating": pd.arrays.IntegerArray(e["rating"].astype(np.int64), e["rating"] == 0),
            "device": np.array(DEVICES, dtype=object)[s["device"][e_sess]],
            "channel": np.array(CHANNELS, dtype=object)[s["channel"][e_sess]],
        },
        columns=list(EVENT_COLUMNS),
    )
    if params.abuse_share > 0:
        frame = _with_abuse(params, chunk_id, users, frame)
    return frame


def _with_abuse(
    params: GenParams, chunk_id: int, users: pd.DataFrame, frame: pd.DataFrame
) -> pd.DataFrame:
    """``frame`` plus the chunk's planted abuse (:mod:`shopperlake.synthetic.abuse`), ordered
    by user and time, without the events of the planted feed outage."""
    plan = abuse.chunk_plan(params, users, chunk_id)
    extra = abuse.chunk_abuse_events(params, build_catalog(params), chunk_id, plan, frame)
    n = len(extra)
    stamp = np.datetime64(params.start_date, "s") + extra["ts"].to_numpy(np.int64).astype(
        "timedelta64[s]"
    )
    quantity, rating = extra["quantity"].to_numpy(), extra["rating"].to_numpy()
    has_qty = np.array([q is not None and q == q for q in quantity], dtype=bool)
    has_rating = np.array([v is not None and v == v for v in rating], dtype=bool)
    extra = pd.DataFrame(
        {
            "event_id": _ids(
                "e", chunk_id * 1_000_000_000 + abuse.ABUSE_EVENT_OFFSET + np.arange(n), 15
            ),
            "user_id": extra["user_id"].to_numpy(dtype=object),
            "session_id": extra["session_id"].to_numpy(dtype=object),
            "ts": np.char.add(np.datetime_as_string(stamp, unit="s"), "Z").astype(object),
            "event_type": extra["event_type"].to_numpy(dtype=object),
            "item_id": extra["item_id"].to_numpy(dtype=object),
            "category": extra["category"].to_numpy(dtype=object),
            "price": extra["price"].to_numpy(dtype=np.float64),
            "quantity": pd.arrays.IntegerArray(
                np.where(has_qty, quantity, 0).astype(np.int64), ~has_qty
            ),
            "order_id": extra["order_id"].to_numpy(dtype=object),
            "query": np.full(n, None, dtype=object),
            "rating": pd.arrays.IntegerArray(
                np.where(has_rating, rating, 0).astype(np.int64), ~has_rating
            ),
            "device": extra["device"].to_numpy(dtype=object),
            "channel": extra["channel"].to_numpy(dtype=object),
        },
        columns=list(EVENT_COLUMNS),
    )
    both = pd.concat([frame, extra], ignore_index=True)
    both = both.sort_values(["user_id", "ts"], kind="stable", ignore_index=True)
    day = abuse.outage_day(params)
    if day is not None:
        date = str(params.start_date + dt.timedelta(days=day))
        out = (both["event_type"] == abuse.OUTAGE_TYPE) & both["ts"].str.startswith(date)
        both = both[~out.to_numpy()].reset_index(drop=True)
    return both


def _where_or_none(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``mask``, else None (object array)."""
    out = np.full(len(mask), None, dtype=object)
    out[mask] = values[mask]
    return out


def _json_lines(frame: pd.DataFrame, omit_null: Sequence[str] = ()) -> list[str]:
    """One JSON object per row; keys in ``omit_null`` are left out where null."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True)
    for key in omit_null:  # never the first key, so each is preceded by a comma
        text = text.replace(f',"{key}":null', "")
    return text.splitlines()


def chunk_event_lines(params: GenParams, chunk_id: int) -> pd.DataFrame:
    """JSON lines of one chunk (``value``), a ``malformed_rate`` share broken on purpose
    (``malformed``: the kind from :data:`MALFORMED_KINDS`, or None for a good line)."""
    frame = chunk_events(params, chunk_id)
    n = len(frame)
    rng = np.random.default_rng([params.seed, STREAM_MALFORMED, chunk_id])
    bad = rng.random(n) < params.malformed_rate
    kind = np.where(bad, rng.integers(0, len(MALFORMED_KINDS), n), -1)
    variant = rng.integers(0, 12, n)
    cut_u = rng.random(n)

    truncated, unknown, negative, no_user, bad_ts = (
        np.flatnonzero(kind == k) for k in range(len(MALFORMED_KINDS))
    )
    frame.loc[unknown, "event_type"] = np.array(UNKNOWN_TYPES, dtype=object)[
        variant[unknown] % len(UNKNOWN_TYPES)
    ]
    price = frame["price"].to_numpy()[negative]
    frame.loc[negative, "price"] = np.where(np.isnan(price), -9.99, -price)
    frame.loc[no_user, "user_id"] = None
    frame.loc[bad_ts, "ts"] = np.array(BAD_TS, dtype=object)[variant[bad_ts] % len(BAD_TS)]
    lines = np.array(_json_lines(frame, NULLABLE_EVENT_COLUMNS), dtype=object)
    # A proper prefix of a one-object line never parses (the closing brace is gone).
    lines[truncated] = [
        line[: 1 + int(u * (len(line) - 2))]
        for line, u in zip(lines[truncated], cut_u[truncated], strict=True)
    ]
    names = np.array((*MALFORMED_KINDS, None), dtype=object)
    return pd.DataFrame({"value": lines, "malformed": names[kind]})


def user_lines(params: GenParams, chunk_id: int) -> list[str]:
    """JSON lines of one chunk's users (``email`` is fake PII)."""
    users = user_traits(params, chunk_id)
    return _json_lines(users[["user_id", "signup_date", "country", "age_band", "email"]])


def item_lines(params: GenParams, chunk_id: int) -> list[str]:
    """JSON lines of items ``[chunk_id * ITEM_CHUNK, ...)`` of the catalog."""
    cat = build_catalog(params)
    part = slice(chunk_id * ITEM_CHUNK, min((chunk_id + 1) * ITEM_CHUNK, params.items))
    frame = pd.DataFrame(
        {
            "item_id": cat.item_id[part],
            "category": cat.category_id[cat.category[part]],
            "brand": cat.brand[part],
            "price": cat.price[part],
            "title": cat.title[part],
        }
    )
    return _json_lines(frame)


def _event_values(params: GenParams, chunk_id: int) -> list[str]:
    return list(chunk_event_lines(params, chunk_id)["value"])


def text_frame(
    spark: SparkSession,
    n_chunks: int,
    partitions: int,
    make_lines: Callable[[int], Sequence[str]],
) -> DataFrame:
    """One ``value`` row per line of ``make_lines(chunk)`` for every chunk, generated on the
    executors; partition p holds a contiguous run of chunks, in order."""

    def generate(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for batch in batches:
            for chunk_id in batch["id"].tolist():
                yield pd.DataFrame({"value": pd.Series(make_lines(int(chunk_id)), dtype=object)})

    parts = max(1, min(partitions, n_chunks))
    return spark.range(0, n_chunks, 1, parts).mapInPandas(generate, "value string")


def events_frame(spark: SparkSession, params: GenParams) -> DataFrame:
    return text_frame(
        spark, params.n_chunks, params.files, functools.partial(_event_values, params)
    )


def users_frame(spark: SparkSession, params: GenParams) -> DataFrame:
    return text_frame(spark, params.n_chunks, params.files, functools.partial(user_lines, params))


def items_frame(spark: SparkSession, params: GenParams) -> DataFrame:
    return text_frame(
        spark, params.n_item_chunks, params.files, functools.partial(item_lines, params)
    )


def summarise_event_lines(lines: DataFrame) -> dict[str, int]:
    """Line counts by event type, and of lines that break a rule (``malformed``)."""
    value = F.col("value")
    event_type = F.regexp_extract(value, r'"event_type":"([^"]*)"', 1)
    broken = (
        ~value.endswith("}")
        | ~event_type.isin(*EVENT_TYPES)
        | value.contains('"price":-')
        | ~value.contains('"user_id":"')
        | ~value.rlike(r'"ts":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"')
    )
    kind = F.when(broken, F.lit("malformed")).otherwise(event_type).alias("kind")
    return {row["kind"]: int(row["count"]) for row in lines.groupBy(kind).count().collect()}


def write_dataset(spark: SparkSession, params: GenParams, output: str) -> dict[str, int]:
    """Write ``events/``, ``items/`` and ``users/`` under ``output`` (overwrite); return counts
    read back from the written event files."""
    root = output.rstrip("/")
    log.info(
        "generating %d users x %d days (%d chunks, %d items) into %s",
        params.users, params.days, params.n_chunks, params.items, root,
    )  # fmt: skip
    items_frame(spark, params).write.mode("overwrite").text(f"{root}/items")
    users_frame(spark, params).write.mode("overwrite").text(f"{root}/users")
    events_frame(spark, params).write.mode("overwrite").text(f"{root}/events")
    counts = summarise_event_lines(spark.read.text(f"{root}/events"))
    counts["lines"] = sum(counts.values())
    return counts


def write_truth(spark: SparkSession, params: GenParams, output: str) -> None:
    """``truth/users`` (one JSON line per planted user: user_id, kind, anomaly_type, date, ring)
    and ``truth/feed`` (the planted outage: source, date, event_type), beside ``events/`` but
    never read by ingest."""
    root = output.rstrip("/")
    plan = planted_abuse(params)[["user_id", "kind", "anomaly_type", "date", "ring"]]
    spark.createDataFrame(plan).coalesce(1).write.mode("overwrite").json(f"{root}/truth/users")
    day = abuse.outage_day(params)
    feed = pd.DataFrame(
        {
            # the files are ingested as source `synthetic` (conf/sources/synthetic.yaml)
            "source": [] if day is None else ["synthetic"],
            "date": [] if day is None else [str(params.start_date + dt.timedelta(days=day))],
            "event_type": [] if day is None else [abuse.OUTAGE_TYPE],
        },
        dtype=object,
    )
    schema = "source string, date string, event_type string"
    spark.createDataFrame(feed, schema).coalesce(1).write.mode("overwrite").json(
        f"{root}/truth/feed"
    )


def _arg(args: argparse.Namespace, cfg: Config, name: str, key: str, kind: type) -> Any:
    value = getattr(args, name)
    if value is None:
        value = cfg.require(f"generate.{key}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"invalid generate.{key} '{value}': expected {kind.__name__}") from None


def params_from_args(args: argparse.Namespace, cfg: Config) -> GenParams:
    """Flags first, then ``generate.*`` from config; raises InputError on invalid values."""
    start = _arg(args, cfg, "start_date", "start_date", str)
    return GenParams(
        users=_arg(args, cfg, "users", "users", int),
        items=_arg(args, cfg, "items", "items", int),
        days=_arg(args, cfg, "days", "days", int),
        seed=_arg(args, cfg, "seed", "seed", int),
        start_date=parse_date(start, "--start-date"),
        categories=_arg(args, cfg, "categories", "categories", int),
        malformed_rate=_arg(args, cfg, "malformed_rate", "malformed_rate", float),
        churn_share=_arg(args, cfg, "churn_share", "churn_share", float),
        bot_share=_arg(args, cfg, "bot_share", "bot_share", float),
        abuse_share=_arg(args, cfg, "abuse_share", "abuse_share", float),
        sequential_share=_arg(args, cfg, "sequential_share", "sequential_share", float),
        files=_arg(args, cfg, "files", "files", int),
        chunk_users=_arg(args, cfg, "chunk_users", "chunk_users", int),
    )


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="output root (any Hadoop FS URI)")
    parser.add_argument("--users", type=int, default=None, help="number of users")
    parser.add_argument("--items", type=int, default=None, help="number of items")
    parser.add_argument("--days", type=int, default=None, help="length of the period in days")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--start-date", dest="start_date", default=None, help="YYYY-MM-DD")
    parser.add_argument(
        "--malformed-rate", dest="malformed_rate", type=float, default=None,
        help="share of event lines broken on purpose",
    )  # fmt: skip
    parser.add_argument(
        "--abuse-share", dest="abuse_share", type=float, default=None,
        help="share of human users given planted abuse (truth under OUTPUT/truth/)",
    )  # fmt: skip
    parser.add_argument(
        "--sequential-share", dest="sequential_share", type=float, default=None,
        help="share of human sessions that walk a category path (planted order)",
    )  # fmt: skip
    parser.add_argument("--files", type=int, default=None, help="number of event files")
    parser.set_defaults(categories=None, churn_share=None, bot_share=None, chunk_users=None)


def run(ctx: JobContext) -> None:
    """Job body: generate, write, count what was written."""
    params = params_from_args(ctx.args, ctx.cfg)
    counts = write_dataset(ctx.spark, params, ctx.args.output)
    truth = planted_users(params)
    if params.abuse_share > 0:
        write_truth(ctx.spark, params, ctx.args.output)
    ctx.run.rows_written = counts["lines"]
    ctx.run.metrics = {
        "users": float(params.users),
        "items": float(params.items),
        "days": float(params.days),
        "bots": float(truth["is_bot"].sum()),
        "churners": float(truth["is_churner"].sum()),
        "malformed_lines": float(counts.get("malformed", 0)),
        **{f"events_{t}": float(counts.get(t, 0)) for t in EVENT_TYPES},
    }
    log.info(
        "wrote %d event lines (%d malformed) for %d users, %d items",
        counts["lines"], counts.get("malformed", 0), params.users, params.items,
    )  # fmt: skip


GENERATE = Job(
    name="generate",
    description="Generate a deterministic synthetic e-commerce clickstream (JSON lines).",
    add_args=add_args,
    body=run,
    reads=(),
    writes=(),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return GENERATE.main(argv, spark)
