"""Labelled abuse planted on top of the normal clickstream, for the anomaly detectors.

With ``generate.abuse_share`` (``--abuse-share``) above 0, that share of each chunk's human
users gets one kind of abuse, drawn uniformly from :data:`KINDS`, on a day in the last
:data:`ABUSE_DAYS` days of the period; their normal events stay as they are (the abuse comes on
top of a genuine history, as when a script or a fraudster uses a real account):

============== ============== ===========================================================
kind           anomaly type   what is planted
============== ============== ===========================================================
scraper        bot            the generator's own bots (``bot_share``): many views, no carts,
                              hours uniform over the day (not added here, only labelled)
click_bot      bot            2-4 sessions of 75 + Poisson(50) view/click pairs on random
                              items, 1-2 s apart
cart_bot       bot            3-6 sessions of 15 + Poisson(15) popular items viewed and carted
                              (2-5 units) 2-4 s apart, never bought
order_burst    order_burst    8 + Poisson(4) one-line orders of cheap items (the cheapest
                              20 %) on one day, 1-4 minutes apart, from the user's usual
                              device and channel (as are the return abuser's orders)
review_spam    review_spam    rings of about 5 users (Poisson) review the ring's item on the
                              ring's day, all 5 stars (70 % of rings) or all 1 star, without
                              buying it
return_abuse   return_abuse   5 + Poisson(3) one-line orders in 14 days, 90 % returned 1-4 days
                              later (normal users return 7 %)
account_switch account_switch 3 + Poisson(1) sessions on one day on a device x channel pair the
                              user never used before, each buying an expensive item (the top
                              10 % of prices); only users with two weeks of history (the
                              others get an order burst instead)
============== ============== ===========================================================

A feed outage is planted too: no ``purchase`` event of day ``days - OUTAGE_DAYS_BEFORE_END``
reaches the files (when the period has at least :data:`MIN_OUTAGE_DAYS` days).

The truth (``generate.planted_abuse``, written by ``generate`` under ``truth/``, never under
``events/``) depends only on the parameters: the plan is drawn from its own random stream
(``STREAM_ABUSE``) and the events' details from another, so adding abuse never changes a normal
event and the truth is known without generating the events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import numpy as np
import pandas as pd


class GenParams(Protocol):
    """What planting reads of :class:`shopperlake.synthetic.generate.GenParams` (which
    imports this module: the generator calls in, never the other way)."""

    @property
    def seed(self) -> int: ...
    @property
    def users(self) -> int: ...
    @property
    def days(self) -> int: ...
    @property
    def abuse_share(self) -> float: ...
    @property
    def start_date(self) -> dt.date: ...


Catalog = Any  # shopperlake.synthetic.generate.Catalog

KINDS = (
    "click_bot", "cart_bot", "order_burst", "review_spam", "return_abuse", "account_switch",
)  # fmt: skip
ANOMALY_TYPE = {
    "scraper": "bot", "click_bot": "bot", "cart_bot": "bot", "order_burst": "order_burst",
    "review_spam": "review_spam", "return_abuse": "return_abuse",
    "account_switch": "account_switch",
}  # fmt: skip
ABUSE_DAYS = 21  # abuse starts on one of the last 21 days of the period
SWITCH_DAYS = 7  # account switches: one of the last 7 days (a takeover is news for a week)
RING_SIZE = 5
OUTAGE_TYPE = "purchase"
OUTAGE_DAYS_BEFORE_END = 4  # inside the 7 days a run judges as of the last day
MIN_OUTAGE_DAYS = 36  # 4 weeks of baseline before the outage day
STREAM_ABUSE, STREAM_ABUSE_EVENTS, STREAM_RINGS = 4, 5, 6
DAY = 86_400
ABUSE_EVENT_OFFSET = 500_000_000  # event ids of abuse: chunk * 1e9 + offset + n
DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("web", "app", "email", "ads", "social")


def outage_day(params: GenParams) -> int | None:
    """Day number (from ``start_date``) of the planted purchase outage, or None."""
    if params.abuse_share <= 0 or params.days < MIN_OUTAGE_DAYS:
        return None
    return params.days - OUTAGE_DAYS_BEFORE_END


def ring_targets(params: GenParams, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day, item and rating of each review-spam ring, for the whole dataset: about
    :data:`RING_SIZE` planted spammers per ring, so rings span chunks (``n_items`` only draws
    the items: the days do not depend on it)."""
    expected = params.users * params.abuse_share / len(KINDS)
    n = max(1, round(expected / RING_SIZE))
    rng = np.random.default_rng([params.seed, STREAM_RINGS])
    day = np.maximum(params.days - 1 - rng.integers(0, ABUSE_DAYS, n), 0)
    rating = np.where(rng.random(n) < 0.7, 5, 1)
    item = np.random.default_rng([params.seed, STREAM_RINGS, 1]).integers(0, n_items, n)
    return day, item, rating


def chunk_plan(params: GenParams, users: pd.DataFrame, chunk_id: int) -> pd.DataFrame:
    """Planted users of one chunk: ``user_idx, user_id, kind, anomaly_type, day, ring``
    (``ring``: the review spammer's ring, see :func:`ring_targets`, else -1).
    Bots of the normal generator are listed as ``scraper`` from day 0."""
    rng = np.random.default_rng([params.seed, STREAM_ABUSE, chunk_id])
    n = len(users)
    human = ~users["is_bot"].to_numpy()
    picked = (rng.random(n) < params.abuse_share) & human
    kind = rng.integers(0, len(KINDS), n)
    first = np.maximum(users["signup_day"].to_numpy(), 0)
    # an account switch needs habits to switch from: two weeks of history at least
    switch = KINDS.index("account_switch")
    kind = np.where(
        (kind == switch) & (first >= params.days - 2 * SWITCH_DAYS),
        KINDS.index("order_burst"),
        kind,
    )
    recent = np.where(kind == KINDS.index("account_switch"), SWITCH_DAYS, ABUSE_DAYS)
    lo = np.maximum(first, params.days - recent)
    day = lo + np.floor(rng.random(n) * np.maximum(params.days - lo, 1)).astype(np.int64)
    rows = pd.DataFrame(
        {
            "user_idx": users["user_idx"].to_numpy(),
            "user_id": users["user_id"].to_numpy(),
            "kind": np.array(KINDS, dtype=object)[kind],
            "day": np.minimum(day, params.days - 1),
        }
    )[picked]
    outage = outage_day(params)  # orders planted on the outage day would never arrive
    if outage is not None:
        rows["day"] = np.where(rows["day"] == outage, outage - 1, rows["day"])
    spam = (rows["kind"] == "review_spam").to_numpy()
    ring_day, _, _ = ring_targets(params, 1)
    pick = rng.integers(0, len(ring_day), n)[picked]
    rows["ring"] = np.where(spam, pick, -1)
    rows["day"] = np.where(spam, ring_day[pick], rows["day"].to_numpy())
    bots = users[users["is_bot"]]
    scrapers = pd.DataFrame(
        {
            "user_idx": bots["user_idx"].to_numpy(),
            "user_id": bots["user_id"].to_numpy(),
            "kind": "scraper",
            "day": np.maximum(bots["signup_day"].to_numpy(), 0),
            "ring": -1,
        }
    )
    plan = pd.concat([scrapers, rows], ignore_index=True).sort_values("user_idx", kind="stable")
    plan["anomaly_type"] = plan["kind"].map(ANOMALY_TYPE)
    return plan.reset_index(drop=True)[
        ["user_idx", "user_id", "kind", "anomaly_type", "day", "ring"]
    ]


class _Rows:
    """Abuse events of one chunk, appended one by one (a few hundred per planted user)."""

    def __init__(self, user_id: str, cat: Catalog, rng: np.random.Generator) -> None:
        self.rows: list[tuple[object, ...]] = []
        self.user_id, self.cat, self.rng = user_id, cat, rng

    def add(
        self, ts: int, event_type: str, item: int | None, session: str | None, *,
        quantity: int | None = None, order: str | None = None, rating: int | None = None,
        device: str = "desktop", channel: str = "web",
    ) -> None:  # fmt: skip
        cat = self.cat
        self.rows.append(
            (
                self.user_id, session, ts, event_type,
                None if item is None else cat.item_id[item],
                cat.category_id[cat.category[item]] if item is not None else None,
                None if item is None else float(cat.price[item]),
                quantity, order, rating, device, channel,
            )
        )  # fmt: skip


def _bot_sessions(r: _Rows, kind: str, day: int, last_day: int, tag: str) -> None:
    rng, cat = r.rng, r.cat
    n_items = len(cat.item_id)
    sessions = int(rng.integers(2, 5)) if kind == "click_bot" else int(rng.integers(3, 7))
    popular = np.argsort(-cat.popularity)[:20]
    for k in range(sessions):
        d = min(day + k // 2, last_day)
        ts = d * DAY + int(rng.integers(0, 24)) * 3600 + int(rng.integers(0, 3600))
        sid = f"s{tag}-b{k:03d}"
        if kind == "click_bot":
            for _ in range(75 + int(rng.poisson(50))):
                item = int(rng.integers(0, n_items))
                r.add(ts, "view", item, sid)
                ts += 1 + int(rng.random() < 0.3)
                r.add(ts, "click", item, sid)
                ts += 1 + int(rng.random() < 0.3)
        else:
            for _ in range(15 + int(rng.poisson(15))):
                item = int(popular[rng.integers(0, len(popular))])
                r.add(ts, "view", item, sid)
                ts += int(rng.integers(2, 5))
                r.add(ts, "add_to_cart", item, sid, quantity=int(rng.integers(2, 6)))
                ts += int(rng.integers(2, 5))


def _order(r: _Rows, ts: int, item: int, sid: str, oid: str, device: str, channel: str) -> int:
    """View, cart and buy one unit of ``item`` from ``ts``; the purchase's time."""
    rng = r.rng
    r.add(ts, "view", item, sid, device=device, channel=channel)
    ts += int(rng.integers(5, 30))
    r.add(ts, "add_to_cart", item, sid, quantity=1, device=device, channel=channel)
    ts += int(rng.integers(5, 30))
    r.add(ts, "purchase", item, sid, quantity=1, order=oid, device=device, channel=channel)
    return ts


def chunk_abuse_events(
    params: GenParams, cat: Catalog, chunk_id: int, plan: pd.DataFrame, normal: pd.DataFrame
) -> pd.DataFrame:
    """Events of the planted abuse of one chunk, as (user_id, session_id, ts seconds from the
    start, event_type, item_id, category, price, quantity, order_id, rating, device, channel).
    ``normal`` (the chunk's normal events) tells which device x channel pairs a user has used."""
    rng = np.random.default_rng([params.seed, STREAM_ABUSE_EVENTS, chunk_id])
    order_price = np.argsort(cat.price)
    cheap = order_price[: max(1, len(order_price) // 5)]
    dear = order_price[-max(1, len(order_price) // 10) :]
    last_day = params.days - 1
    _, ring_item, ring_rating = ring_targets(params, len(cat.item_id))
    pairs_of = normal.assign(pair=normal["device"] + "|" + normal["channel"]).groupby("user_id")[
        "pair"
    ]
    used = pairs_of.agg(set).to_dict() if len(normal) else {}
    usual = pairs_of.agg(lambda p: p.value_counts().index[0]).to_dict() if len(normal) else {}
    out: list[tuple[object, ...]] = []
    for p in plan.itertuples():
        if p.kind == "scraper":
            continue
        r = _Rows(p.user_id, cat, rng)
        tag = f"{int(p.user_idx)}"
        day = int(p.day)
        # orders of the other kinds come from the user's usual device and channel
        home_device, home_channel = usual.get(p.user_id, "mobile|app").split("|")
        if p.kind in ("click_bot", "cart_bot"):
            _bot_sessions(r, p.kind, day, last_day, tag)
        elif p.kind == "order_burst":
            ts = day * DAY + int(rng.integers(8, 22)) * 3600
            for k in range(8 + int(rng.poisson(4))):
                item = int(cheap[rng.integers(0, len(cheap))])
                sid, oid = f"s{tag}-o{k:03d}", f"o{tag}-o{k:03d}"
                ts = _order(r, ts, item, sid, oid, home_device, home_channel)
                ts += int(rng.integers(60, 240))
        elif p.kind == "review_spam":
            ts = day * DAY + int(rng.integers(0, DAY))
            ring = int(p.ring)
            r.add(ts, "review", int(ring_item[ring]), None, rating=int(ring_rating[ring]))
        elif p.kind == "return_abuse":
            for k in range(5 + int(rng.poisson(3))):
                d = max(day - int(rng.integers(0, 15)), max(0, day - 14))
                ts = d * DAY + int(rng.integers(9, 22)) * 3600
                item = int(cat.sample(np.array([cat.category[rng.integers(0, len(cat.category))]]),
                                      rng.random(1))[0])  # fmt: skip
                oid = f"o{tag}-r{k:03d}"
                ts = _order(r, ts, item, f"s{tag}-r{k:03d}", oid, home_device, home_channel)
                back = ts + int(rng.integers(1, 5)) * DAY
                if rng.random() < 0.9 and back < params.days * DAY:
                    r.add(back, "return", item, None, quantity=1, order=oid)
        elif p.kind == "account_switch":
            seen = used.get(p.user_id, set())
            pairs = [f"{d}|{c}" for d in DEVICES for c in CHANNELS if f"{d}|{c}" not in seen]
            pairs = pairs or ["tablet|social"]  # every pair used (never in practice)
            device, channel = pairs[int(rng.integers(0, len(pairs)))].split("|")
            ts = day * DAY + int(rng.integers(0, 12)) * 3600  # the orders stay within the day
            for k in range(3 + int(rng.poisson(1))):
                item = int(dear[rng.integers(0, len(dear))])
                sid = f"s{tag}-t{k:03d}"
                ts = _order(r, ts, item, sid, f"o{tag}-t{k:03d}", device, channel)
                ts += int(rng.integers(600, 3600))
        out.extend(row for row in r.rows if int(row[2]) < params.days * DAY)  # type: ignore[call-overload]
    columns = [
        "user_id", "session_id", "ts", "event_type", "item_id", "category", "price",
        "quantity", "order_id", "rating", "device", "channel",
    ]  # fmt: skip
    return pd.DataFrame(out, columns=columns)
