-- What the DataStream windows (datastream_windows.py) get from the events (`events`, unique_events.sql read once):
-- only the rows their Python operators need, as one view, so Python's cost follows the number of windows and funnel
-- requests, not the number of requests. `input` says whose row it is.
-- Placeholders: {{ funnel_routes }} (a SQL list of string literals).

-- The per-minute window's rows (input = 'minute'). Python decides what is late for that window (behind the
-- watermark + allowed lateness), so the split here keeps that decision intact:
--   - an event ahead of the watermark it arrived at (`split_watermark`, unique_events.sql) is counted in SQL
--     per second of event time, service and route. A 1-second window fires when the watermark passes its end,
--     and Flink emits a window's row before it forwards that watermark: the row reaches Python before the
--     watermark that closes its minute, inside its minute (window_time = the second's last millisecond), so
--     Python counts it in the minute's first firing, exactly where each of its events would have been counted;
--   - an event at or behind the watermark goes to Python as itself (requests = 1): Python counts it in a
--     re-firing (inside the allowed lateness) or sends it to raw.late_events, with its own event_id and offset.
-- The checkout funnel's rows (input = 'funnel'): its requests, each as itself (a funnel counts steps by event id).
-- A request on its own carries `watermark_ms`, the watermark when it arrived (epoch milliseconds): Python judges
-- its lateness against it, not against its own operator's watermark, which is the minimum over this view's
-- branches and may still be behind (minute_window.py).
-- each event with the watermark it arrived at (unique_events.sql: never behind the windows' after a restore)
CREATE TEMPORARY VIEW arrivals AS
SELECT
  event_id, event_time, service, route, status_code, user_id, user_key, kafka_partition, kafka_offset,
  COALESCE(event_time <= split_watermark, FALSE) AS behind_watermark,
  CAST(TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ(0, 3), split_watermark) AS BIGINT) * 1000
    + EXTRACT(MILLISECOND FROM split_watermark) AS watermark_ms
FROM events;

CREATE TEMPORARY VIEW on_time_events AS
SELECT service, route, status_code, event_time
FROM arrivals
WHERE NOT behind_watermark;

CREATE TEMPORARY VIEW python_input AS
SELECT
  'minute' AS input,
  CAST(NULL AS STRING) AS event_id,
  window_time AS event_time,
  service,
  route,
  CAST(NULL AS INT) AS status_code,
  CAST(NULL AS STRING) AS user_id,
  CAST(NULL AS STRING) AS user_key,
  COUNT(*) AS requests,
  COUNT(*) FILTER (WHERE status_code >= 500) AS errors,
  CAST(NULL AS INT) AS kafka_partition,
  CAST(NULL AS BIGINT) AS kafka_offset,
  CAST(NULL AS BIGINT) AS watermark_ms
FROM TABLE(TUMBLE(TABLE on_time_events, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
GROUP BY window_start, window_end, window_time, service, route
UNION ALL
SELECT
  'minute' AS input, event_id, event_time, service, route, status_code, user_id, user_key, CAST(1 AS BIGINT),
  CAST(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END AS BIGINT), kafka_partition, kafka_offset, watermark_ms
FROM arrivals
WHERE behind_watermark
UNION ALL
SELECT
  'funnel' AS input, event_id, event_time, service, route, status_code, user_id, user_key, CAST(1 AS BIGINT),
  CAST(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END AS BIGINT), kafka_partition, kafka_offset, watermark_ms
FROM arrivals
WHERE route IN ({{ funnel_routes }});
