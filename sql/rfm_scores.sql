-- RFM scores 1-5 of the purchasers of one profile snapshot, by quintile cut points of the
-- population (exact percentiles at 20/40/60/80 %). A score is 1 + the number of cut points the
-- user beats: strictly above for frequency and monetary value, strictly below for recency
-- (fewer days since the last purchase is better). Tied users always get the same score.
--   {profiles}   one gold.user_profiles snapshot
WITH buyers AS (
  SELECT user_id, recency_days, frequency, monetary_total
  FROM {profiles}
  WHERE frequency > 0
),
cuts AS (
  SELECT
    percentile(recency_days, array(0.2, 0.4, 0.6, 0.8)) AS r_cuts,
    percentile(frequency, array(0.2, 0.4, 0.6, 0.8)) AS f_cuts,
    percentile(monetary_total, array(0.2, 0.4, 0.6, 0.8)) AS m_cuts
  FROM buyers
)
SELECT
  b.user_id,
  1 + size(filter(c.r_cuts, x -> x > b.recency_days)) AS r_score,
  1 + size(filter(c.f_cuts, x -> x < b.frequency)) AS f_score,
  1 + size(filter(c.m_cuts, x -> x < b.monetary_total)) AS m_score
FROM buyers AS b
CROSS JOIN cuts AS c
