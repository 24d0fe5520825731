-- gold.segment_summary of the latest snapshot, biggest segments first within each kind.
CREATE OR REPLACE TEMP VIEW segment_summary_latest AS
SELECT *
FROM segment_summary
WHERE as_of_date = (SELECT max(as_of_date) FROM segment_summary)
ORDER BY kind DESC, users DESC
