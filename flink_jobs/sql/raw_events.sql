-- raw_events: valid events -> raw.http_events (each event_id once), malformed -> raw.dead_letter_events.
-- Runs after sources/kafka.sql and http_events.sql (whose unique_http_events it reads).
-- device_class is a Python UDF (flink_jobs/udfs.py); the bot flag is the built-in REGEXP over the pattern of
-- flink_jobs/user_agent.py. Placeholders: {{ catalog }}, {{ bot_pattern }}.

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
  device_class(user_agent),
  COALESCE(REGEXP(user_agent, '{{ bot_pattern }}'), FALSE)
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
