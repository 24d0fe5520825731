-- Segments of the latest build_segments snapshot, with the profile columns analysts ask for
-- first (RFM values, tags) from the profile snapshot of the same date.
CREATE OR REPLACE TEMP VIEW user_segments_latest AS
SELECT
  s.user_id,
  s.as_of_date,
  s.rfm_segment,
  s.r_score,
  s.f_score,
  s.m_score,
  s.rfm_code,
  s.cluster_id,
  s.cluster_description,
  p.recency_days,
  p.frequency,
  p.monetary_total,
  p.days_since_last_event,
  p.tags
FROM user_segments AS s
LEFT JOIN user_profiles AS p
  ON p.user_id = s.user_id AND p.as_of_date = s.as_of_date
WHERE s.as_of_date = (SELECT max(as_of_date) FROM user_segments)
