-- The raw tables: valid events -> raw.http_events (each event_id once), malformed -> raw.dead_letter_events.
-- Reads `events` (unique_events.sql) and `checked_events` (http_events.sql), each read once through a DataStream.
-- The device class is the rules of flink_jobs/user_agent.py, rendered as built-in functions over the header in
-- lower case (computed once); the bot flag is the device class `bot`. Placeholders: {{ catalog }},
-- {{ device_class }} (an SQL expression over user_agent_lower).

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
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6)),
  device_class,
  device_class = 'bot'
FROM (
  SELECT *, {{ device_class }} AS device_class
  FROM (SELECT *, LOWER(user_agent) AS user_agent_lower FROM events)
);

INSERT INTO {{ catalog }}.`raw`.dead_letter_events
SELECT
  payload,
  error_reason,
  kafka_partition,
  kafka_offset,
  CAST(kafka_timestamp AS TIMESTAMP_LTZ(6)),
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(6))
FROM checked_events
WHERE error_reason IS NOT NULL;
