-- Sinks of datastream_windows.py. Its DataStreams arrive as the temporary views minute_firings, closed_funnels
-- and late_window_events, with times in epoch milliseconds; here they become Iceberg rows.
-- Placeholders: {{ catalog }}, {{ job_name }}.

-- append-only: a late re-firing is a new row with the next `firing` (readers take the latest: docs/streaming.md)
INSERT INTO {{ catalog }}.speed.requests_per_route_minute_firings
SELECT
  CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP_LTZ(6)),
  CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP_LTZ(6)),
  service,
  route,
  request_count,
  error_count,
  firing,
  CAST(TO_TIMESTAMP_LTZ(fired_at_ms, 3) AS TIMESTAMP_LTZ(6)),
  CAST(TO_TIMESTAMP_LTZ(watermark_ms, 3) AS TIMESTAMP_LTZ(6))
FROM minute_firings;

INSERT INTO {{ catalog }}.speed.checkout_funnels
SELECT
  CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP_LTZ(6)),
  CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP_LTZ(6)),
  service,
  user_key,
  steps,
  deepest_step,
  last_route,
  outcome,
  closed_by
FROM closed_funnels;

INSERT INTO {{ catalog }}.`raw`.late_events
SELECT
  event_id,
  CAST(TO_TIMESTAMP_LTZ(event_ms, 3) AS TIMESTAMP_LTZ(6)),
  service,
  route,
  status_code,
  user_id,
  '{{ job_name }}',
  window_name,
  CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP_LTZ(6)),
  CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP_LTZ(6)),
  CAST(TO_TIMESTAMP_LTZ(watermark_ms, 3) AS TIMESTAMP_LTZ(6)),
  kafka_partition,
  kafka_offset,
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6))
FROM late_window_events;
