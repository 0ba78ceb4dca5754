-- Streaming only: split the events (unique_events.sql, read once as `events`) at the watermark. Flink SQL has no
-- late-data side output, so the split is made here, explicitly: an event at or behind the watermark it arrived
-- at (`split_watermark`: CURRENT_WATERMARK as the job saw it, never behind the windows' own after a restore,
-- unique_events.sql says how) is late for every window of windows.sql. It is not counted there and lands in
-- raw.late_events instead, never dropped silently. Both sides test the same column of the same row, so each
-- event lands on exactly one side. Placeholders: {{ catalog }}, {{ job_name }}.

CREATE TEMPORARY VIEW window_events AS
SELECT event_id, event_time, service, route, status_code, duration_ms, user_id, user_key, session_key
FROM events
WHERE split_watermark IS NULL OR event_time > split_watermark;

INSERT INTO {{ catalog }}.`raw`.late_events
SELECT
  event_id,
  CAST(event_time AS TIMESTAMP_LTZ(6)),
  service,
  route,
  status_code,
  user_id,
  '{{ job_name }}',
  'sql_windows',
  CAST(CAST(FLOOR(CAST(event_time AS TIMESTAMP(3)) TO MINUTE) AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6)),
  CAST(CAST(FLOOR(CAST(event_time AS TIMESTAMP(3)) TO MINUTE) + INTERVAL '1' MINUTE AS TIMESTAMP_LTZ(3)) AS TIMESTAMP_LTZ(6)),
  CAST(split_watermark AS TIMESTAMP_LTZ(6)),
  kafka_partition,
  kafka_offset,
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6))
FROM events
WHERE event_time <= split_watermark;
