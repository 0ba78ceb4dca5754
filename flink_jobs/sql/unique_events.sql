-- The valid events of `checked_events` (http_events.sql, read once), each event_id once. The event time stays
-- a time attribute: windows and the split at the watermark read it.

CREATE TEMPORARY VIEW valid_http_events AS
SELECT
  event_id, event_time, service, `method`, route, path, status_code, duration_ms, user_id, client_address,
  COALESCE(user_id, client_address, 'anonymous') AS user_key,
  CONCAT(service, '/', COALESCE(user_id, client_address, 'anonymous')) AS session_key,
  user_agent, referer, trace_id, request_bytes, response_bytes, schema_version,
  kafka_partition, kafka_offset, kafka_timestamp, proc_time
FROM checked_events
WHERE error_reason IS NULL;

-- An event delivered twice (a spool replay after a lost acknowledgement) keeps its first delivery. Keeping the
-- first row in processing time emits inserts only, so the Iceberg sink stays append-only, and the event time stays
-- a time attribute (windows and the watermark split read it). Each event_id is remembered for
-- streaming.dedup_horizon_minutes (the job's state TTL): a second delivery later than that is kept (README,
-- "De-duplication horizon"). This is the only state the job keeps per event. The job reads this view once,
-- through a DataStream, as `events`: whatever reads the events shares one de-duplication.
CREATE TEMPORARY VIEW unique_http_events AS
SELECT *
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time ASC) AS delivery
  FROM valid_http_events
)
WHERE delivery = 1;
