-- Replay only (batch mode): speed.user_sessions recomputed from `window_events` (sources/iceberg.sql). Flink 2.0
-- plans no SESSION window in batch mode, so the same sessions are found the way batch SQL finds them, gaps and
-- islands: a request more than the gap after the previous one of its session_key starts a new session.
-- It gives what windows.sql's SESSION window gives: Flink merges two session windows that touch, so a request
-- exactly one gap after the previous one continues the session; session_end is the last request plus the gap.
-- Placeholders: {{ session_gap_minutes }}.

-- LAG takes no TIMESTAMP_LTZ in Flink 2.0: the comparison is on the UTC wall-clock TIMESTAMP (table.local-time-zone)
CREATE TEMPORARY VIEW previous_requests AS
SELECT
  *,
  LAG(CAST(event_time AS TIMESTAMP(3))) OVER (PARTITION BY session_key ORDER BY event_time) AS previous_request_at
FROM window_events;

CREATE TEMPORARY VIEW session_starts AS
SELECT
  *,
  CASE
    WHEN previous_request_at IS NULL THEN 1
    WHEN CAST(event_time AS TIMESTAMP(3)) > previous_request_at + INTERVAL '{{ session_gap_minutes }}' MINUTE THEN 1
    ELSE 0
  END AS starts_session
FROM previous_requests;

CREATE TEMPORARY VIEW numbered_sessions AS
SELECT
  *,
  SUM(starts_session) OVER (PARTITION BY session_key ORDER BY event_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    AS session_number
FROM session_starts;

CREATE TEMPORARY VIEW user_sessions_replay AS
SELECT
  CAST(MIN(event_time) AS TIMESTAMP_LTZ(6))                                   AS session_start,
  CAST(MAX(event_time) + INTERVAL '{{ session_gap_minutes }}' MINUTE AS TIMESTAMP_LTZ(6)) AS session_end,
  MAX(service)                                                                AS service,
  MAX(user_key)                                                               AS user_key,
  MAX(user_id)                                                                AS user_id,
  CAST(MAX(event_time) AS TIMESTAMP_LTZ(6))                                   AS last_request_at,
  COUNT(*)                                                                    AS request_count,
  COUNT(*) FILTER (WHERE status_code >= 500)                                  AS error_count,
  COUNT(DISTINCT route)                                                       AS distinct_routes,
  ARRAY_AGG(DISTINCT route)                                                   AS routes
FROM numbered_sessions
GROUP BY session_key, session_number;
