-- The activity map of gold.user_profiles as rows: one per user, snapshot and window
-- (window_key "7d", "30d", ..., "all"), whatever windows the snapshot was built with.
CREATE OR REPLACE TEMP VIEW user_activity_windows AS
SELECT
  p.user_id,
  p.as_of_date,
  w.window_key,
  w.stats.events,
  w.stats.views,
  w.stats.clicks,
  w.stats.searches,
  w.stats.add_to_carts,
  w.stats.remove_from_carts,
  w.stats.purchase_events,
  w.stats.returns,
  w.stats.reviews,
  w.stats.sessions,
  w.stats.active_days,
  w.stats.purchases,
  w.stats.spend
FROM user_profiles AS p
LATERAL VIEW explode(p.activity) w AS window_key, stats
