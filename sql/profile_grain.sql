-- Point-in-time event grain for gold.user_profiles: one row per user, session, day, hour,
-- device, channel, order, category (or item, when the category is missing) and purchase price
-- with every count the profile needs.
-- It is the only pass over the raw events: windowed distinct counts (sessions, active days,
-- orders), category shares and category median prices are all derived from this much
-- smaller table instead of running count(DISTINCT ...) over the raw events.
--   {events}     canonical events (bronze.events columns)
--   :as_of       DATE, the as-of day (partition pruning on event_date)
--   :as_of_end   TIMESTAMP, the end of the as-of day: only events strictly before it count
SELECT
  user_id,
  session_id,
  day,
  hour,
  device,
  channel,
  order_key,
  category,
  fill_item,
  purchase_price,
  count(*) AS events,
  count_if(event_type = 'view') AS views,
  count_if(event_type = 'click') AS clicks,
  count_if(event_type = 'search') AS searches,
  count_if(event_type = 'add_to_cart') AS add_to_carts,
  count_if(event_type = 'remove_from_cart') AS remove_from_carts,
  count_if(event_type = 'purchase') AS purchase_events,
  count_if(event_type = 'return') AS returns,
  count_if(event_type = 'review') AS reviews,
  sum(spend) AS spend,
  sum(returned_value) AS returned_value,
  sum(units) AS units,
  sum(rating) AS rating_sum,
  count(rating) AS ratings,
  min(ts) AS first_ts,
  max(ts) AS last_ts
FROM (
  SELECT
    user_id,
    session_id,
    ts,
    event_type,
    device,
    channel,
    category,
    -- events without a category keep their item, to take its category from bronze.items
    CASE WHEN category IS NULL THEN item_id END AS fill_item,
    CASE WHEN event_type = 'review' THEN rating END AS rating,
    to_date(ts) AS day,
    hour(ts) AS hour,
    -- purchase occasions: the order id, or the event itself when a purchase has none
    CASE WHEN event_type IN ('purchase', 'return') THEN coalesce(order_id, event_id) END
      AS order_key,
    -- spend in cents-exact money: unit price times quantity (a missing quantity is one unit)
    CASE WHEN event_type = 'purchase' THEN round(price * coalesce(quantity, 1), 2) END AS spend,
    -- the value of returned lines, priced the same way
    CASE WHEN event_type = 'return' THEN round(price * coalesce(quantity, 1), 2) END
      AS returned_value,
    -- unit price and units of priced purchase lines (category median price, price level)
    CASE WHEN event_type = 'purchase' THEN price END AS purchase_price,
    CASE WHEN event_type = 'purchase' AND price IS NOT NULL THEN coalesce(quantity, 1) END
      AS units
  FROM {events}
  WHERE event_date <= :as_of AND ts < :as_of_end
) AS e
GROUP BY user_id, session_id, day, hour, device, channel, order_key, category, fill_item,
  purchase_price
