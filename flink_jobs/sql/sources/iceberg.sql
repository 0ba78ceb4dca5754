-- Source of a Kappa replay (batch mode): the events of raw.http_events in [read_from, read_until), the
-- replayed range widened by the longest window before it and by the session look-ahead after it (windows that
-- cross the range's edges: docs/streaming.md, "Kappa replay"). It defines `window_events` with the columns the
-- streaming side gives windows.sql, so the window SQL is the same file in both modes. Like the stream's, each
-- event_id is counted once: its first row (a second delivery later than the stream's de-duplication horizon is
-- a second row of raw.http_events). raw.http_events holds late events too: a replay counts what the stream had
-- to leave to raw.late_events.
-- Placeholders: {{ catalog }}, {{ read_from_ms }}, {{ read_until_ms }} (epoch milliseconds).
CREATE TEMPORARY VIEW window_events AS
SELECT event_id, event_time, service, route, status_code, duration_ms, user_id, user_key, session_key
FROM (
  SELECT
    event_id,
    CAST(event_time AS TIMESTAMP_LTZ(3)) AS event_time,
    service,
    route,
    status_code,
    duration_ms,
    user_id,
    COALESCE(user_id, client_address, 'anonymous') AS user_key,
    CONCAT(service, '/', COALESCE(user_id, client_address, 'anonymous')) AS session_key,
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at, kafka_partition, kafka_offset) AS delivery
  FROM {{ catalog }}.`raw`.http_events
  WHERE event_time >= TO_TIMESTAMP_LTZ({{ read_from_ms }}, 3)
    AND event_time < TO_TIMESTAMP_LTZ({{ read_until_ms }}, 3)
)
WHERE delivery = 1;
