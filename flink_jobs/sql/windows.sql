-- The window aggregations, as views over `window_events` (late_events.sql when streaming from Kafka,
-- sources/iceberg.sql when replaying history in batch mode): one file, both modes. The job inserts each view
-- into its speed.* table (flink_jobs/windows.py: INSERT INTO streaming, INSERT OVERWRITE of the replayed
-- range's partitions in a replay). Placeholders: {{ session_gap_minutes }}.
--
-- `window_events` holds each event_id once (http_events.sql de-duplicates the stream, sources/iceberg.sql the
-- replayed history), so a request is a row: COUNT(*), no per-event state beyond the de-duplication's.
-- Timestamps leave as TIMESTAMP_LTZ(6) (Iceberg timestamptz), in UTC.

-- TUMBLE, 1 minute: requests per service, route and status.
CREATE TEMPORARY VIEW api_requests_per_minute AS
SELECT
  CAST(CAST(window_start AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))            AS window_start,
  CAST(CAST(window_end AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))              AS window_end,
  service,
  route,
  status_code,
  COUNT(*)                                                                    AS request_count,
  COUNT(*) FILTER (WHERE status_code >= 500)                                  AS error_count,
  AVG(duration_ms)                                                            AS avg_duration_ms,
  CAST(PERCENTILE(duration_ms, 0.5) AS DOUBLE)                                AS p50_duration_ms,
  CAST(PERCENTILE(duration_ms, 0.95) AS DOUBLE)                               AS p95_duration_ms,
  MAX(duration_ms)                                                            AS max_duration_ms
FROM TABLE(TUMBLE(TABLE window_events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, service, route, status_code;

-- HOP, 5 minutes sliding by 1 minute: traffic and error rate per service and route (peaks: the maximum over
-- windows, see the marts).
CREATE TEMPORARY VIEW api_traffic_sliding_5m AS
SELECT
  CAST(CAST(window_start AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))            AS window_start,
  CAST(CAST(window_end AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))              AS window_end,
  service,
  route,
  COUNT(*)                                                                    AS request_count,
  COUNT(*) FILTER (WHERE status_code >= 500)                                  AS error_count,
  CAST(COUNT(*) FILTER (WHERE status_code >= 500) AS DOUBLE) / COUNT(*)       AS error_rate,
  CAST(COUNT(*) AS DOUBLE) / 300                                              AS requests_per_second,
  CAST(PERCENTILE(duration_ms, 0.95) AS DOUBLE)                               AS p95_duration_ms
FROM TABLE(HOP(TABLE window_events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))
GROUP BY window_start, window_end, service, route;

-- SESSION, gap from configuration: a user's visits (user id, else client address) per service.
-- session_end is the last request plus the gap, as Flink's session windows define it. Requests with neither a
-- user id nor a client address share the user_key 'anonymous'. session_key = service + user_key.

CREATE TEMPORARY VIEW user_sessions AS
SELECT
  CAST(CAST(window_start AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))            AS session_start,
  CAST(CAST(window_end AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))              AS session_end,
  MAX(service)                                                                AS service,
  MAX(user_key)                                                               AS user_key,
  MAX(user_id)                                                                AS user_id,
  CAST(MAX(event_time) AS TIMESTAMP_LTZ(6))                                   AS last_request_at,
  COUNT(*)                                                                    AS request_count,
  COUNT(*) FILTER (WHERE status_code >= 500)                                  AS error_count,
  COUNT(DISTINCT route)                                                       AS distinct_routes,
  ARRAY_AGG(DISTINCT route)                                                   AS routes
-- one partition column: Flink 2.0 fails to resolve PARTITION BY (service, user_key) over a view
FROM TABLE(SESSION(TABLE window_events PARTITION BY session_key, DESCRIPTOR(event_time),
                   INTERVAL '{{ session_gap_minutes }}' MINUTE))
GROUP BY window_start, window_end, session_key;

-- CUMULATE, 1 day in 1-hour steps: running daily totals per service.
CREATE TEMPORARY VIEW api_daily_running_totals AS
SELECT
  CAST(CAST(window_start AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))            AS window_start,
  CAST(CAST(window_end AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6))              AS window_end,
  service,
  COUNT(*)                                                                    AS request_count,
  COUNT(*) FILTER (WHERE status_code >= 500)                                  AS error_count,
  COUNT(DISTINCT user_id)                                                     AS distinct_users
FROM TABLE(CUMULATE(TABLE window_events, DESCRIPTOR(event_time), INTERVAL '1' HOUR, INTERVAL '1' DAY))
GROUP BY window_start, window_end, service;
