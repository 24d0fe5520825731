-- One row per user, snapshot and tag of gold.user_profiles (users without tags have no row).
CREATE OR REPLACE TEMP VIEW user_tags AS
SELECT p.user_id, p.as_of_date, t.tag
FROM user_profiles AS p
LATERAL VIEW explode(p.tags) t AS tag
