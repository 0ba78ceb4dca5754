-- The valid events of `checked_events` (http_events.sql, read once), each event_id once, each with the watermark
-- it is judged against (`split_watermark`). The event time stays a time attribute: windows read it.

-- The watermark an event is split at (late_events.sql, datastream_inputs.sql), and the one the windows run on
-- (streaming.py: `events` takes its watermark from this column, not from the source): the newest watermark the
-- job saw arrive with an event (CURRENT_WATERMARK), kept in this operator's checkpointed state. Flink does not
-- checkpoint watermarks: after a restore CURRENT_WATERMARK is NULL until the first new one passes, and may then
-- start behind the last one, while the window operators restore theirs and drop whatever is behind it. Here the
-- newest one seen is restored with the windows' own, which never passed it (they only advance on it), so an
-- event on time for the split is on time for every window, after a restore too, and one behind it is recorded
-- late: exactly one of the two. It never goes back, so a window's watermark is never ahead of the split's.
-- One operator for the whole job (its state: one timestamp), reading every message, valid or not; its state
-- lives as long as the de-duplication's, renewed by every event.
CREATE TEMPORARY VIEW watermarked_events AS
SELECT *, MAX(arrival_watermark) OVER seen AS split_watermark
FROM (
  -- the columns of an event (a malformed message's text stays out of this operator's input)
  SELECT
    event_id, event_time, service, `method`, route, path, status_code, duration_ms, user_id, client_address,
    user_agent, referer, trace_id, request_bytes, response_bytes, schema_version,
    kafka_partition, kafka_offset, kafka_timestamp, proc_time, error_reason,
    CURRENT_WATERMARK(event_time) AS arrival_watermark
  FROM checked_events
)
WINDOW seen AS (ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW valid_http_events AS
SELECT
  event_id, event_time, service, `method`, route, path, status_code, duration_ms, user_id, client_address,
  COALESCE(user_id, client_address, 'anonymous') AS user_key,
  CONCAT(service, '/', COALESCE(user_id, client_address, 'anonymous')) AS session_key,
  user_agent, referer, trace_id, request_bytes, response_bytes, schema_version,
  kafka_partition, kafka_offset, kafka_timestamp, proc_time, split_watermark
FROM watermarked_events
WHERE error_reason IS NULL;

-- An event delivered twice (a spool replay after a lost acknowledgement) keeps its first delivery. Keeping the
-- first row in processing time emits inserts only, so the Iceberg sink stays append-only, and the event time stays
-- a time attribute (windows and the watermark split read it). Each event_id is remembered for
-- streaming.dedup_horizon_minutes (the job's state TTL): a second delivery later than that is kept (docs/streaming.md,
-- "De-duplication horizon"). This is the only state the job keeps per event. The job reads this view once,
-- through a DataStream, as `events`: whatever reads the events shares one de-duplication.
CREATE TEMPORARY VIEW unique_http_events AS
SELECT *
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time ASC) AS delivery
  FROM valid_http_events
)
WHERE delivery = 1;
