-- raw_events: valid events -> raw.http_events (each event_id once), malformed -> raw.dead_letter_events.
-- Runs after sources/kafka.sql and http_events.sql. Placeholders: {{ catalog }}.

-- An event delivered twice (a spool replay after a lost acknowledgement) keeps its first delivery. Keeping the
-- first row in processing time emits inserts only, so the Iceberg sink stays append-only. The job's state TTL
-- (streaming.dedup_ttl_hours) bounds what is remembered.
CREATE TEMPORARY VIEW unique_http_events AS
SELECT *
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time ASC) AS delivery
  FROM valid_http_events
)
WHERE delivery = 1;

INSERT INTO {{ catalog }}.`raw`.http_events
SELECT
  event_id,
  CAST(event_time AS TIMESTAMP_LTZ(6)),
  service,
  `method`,
  route,
  path,
  status_code,
  duration_ms,
  user_id,
  client_address,
  user_agent,
  referer,
  trace_id,
  request_bytes,
  response_bytes,
  schema_version,
  kafka_partition,
  kafka_offset,
  CAST(kafka_timestamp AS TIMESTAMP_LTZ(6)),
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6))
FROM unique_http_events;

INSERT INTO {{ catalog }}.`raw`.dead_letter_events
SELECT
  payload,
  error_reason,
  kafka_partition,
  kafka_offset,
  CAST(kafka_timestamp AS TIMESTAMP_LTZ(6)),
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6))
FROM checked_http_events
WHERE error_reason IS NOT NULL;
