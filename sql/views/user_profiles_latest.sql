-- Latest profile per user: the row of the most recent as_of_date snapshot that has the user.
-- Reads the view `user_profiles` (gold.user_profiles, registered by shopperlake.sqlfiles).
CREATE OR REPLACE TEMP VIEW user_profiles_latest AS
SELECT p.*
FROM user_profiles AS p
JOIN (
  SELECT user_id, max(as_of_date) AS as_of_date
  FROM user_profiles
  GROUP BY user_id
) AS latest
  ON p.user_id = latest.user_id AND p.as_of_date = latest.as_of_date
