-- A bounded source with the columns of sources/kafka.sql: a file of messages, one per line. The jobs' tests
-- and demos run the same SQL over it on a local mini-cluster. There is no Kafka position: partition 0 and
-- offset -1 stand in, the record timestamp is the event time.
-- Placeholders: {{ source_path }}, {{ out_of_orderness_seconds }}.
CREATE TEMPORARY TABLE http_events_source (
  payload          STRING,
  kafka_partition AS CAST(0 AS INT),
  kafka_offset AS CAST(-1 AS BIGINT),
  proc_time AS PROCTIME(),
  event_time AS COALESCE(
    CAST(TO_TIMESTAMP(JSON_VALUE(payload, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS TIMESTAMP_LTZ(3)),
    TO_TIMESTAMP_LTZ(0, 3)),
  kafka_timestamp AS COALESCE(
    CAST(TO_TIMESTAMP(JSON_VALUE(payload, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS TIMESTAMP_LTZ(3)),
    TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR event_time AS event_time - INTERVAL '{{ out_of_orderness_seconds }}' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '{{ source_path }}',
  'format' = 'raw'
);
