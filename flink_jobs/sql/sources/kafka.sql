-- Source of the streaming jobs: the Kafka topic, one message = one row, read as text so a malformed message
-- can be kept (raw_events.sql sends it to raw.dead_letter_events) instead of failing the job.
-- Placeholders: {{ kafka_source_options }} (rendered WITH options), {{ out_of_orderness_seconds }}.
--
-- Event time is the request's start at the server. The watermark is generated per Kafka partition inside the
-- source (the connector supports watermark push-down) and a partition idle for `table.exec.source.idle-timeout`
-- stops holding it back. A message without a readable event_time gets epoch 0: it never advances the
-- watermark, and it is not a valid event anyway (see http_events.sql).
CREATE TEMPORARY TABLE http_events_source (
  payload          STRING,
  kafka_partition  INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset     BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_timestamp  TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proc_time AS PROCTIME(),
  event_time AS COALESCE(
    CAST(TO_TIMESTAMP(JSON_VALUE(payload, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS TIMESTAMP_LTZ(3)),
    TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR event_time AS event_time - INTERVAL '{{ out_of_orderness_seconds }}' SECOND
) WITH (
  {{ kafka_source_options }}
);
