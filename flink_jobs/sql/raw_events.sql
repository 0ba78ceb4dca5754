-- raw_events: the topic as it arrived -> validated events and dead letters.
-- Placeholders: {{ catalog }} (Iceberg catalog name), {{ kafka_source_options }} (rendered WITH options).

-- Each message is read as text so a malformed one can be kept, not fail the job.
CREATE TEMPORARY TABLE kafka_http_events (
  payload          STRING,
  kafka_partition  INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset     BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_timestamp  TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL
) WITH (
  {{ kafka_source_options }}
);

CREATE TEMPORARY VIEW parsed_http_events AS
SELECT
  payload,
  kafka_partition,
  kafka_offset,
  kafka_timestamp,
  JSON_VALUE(payload, '$.event_id')                                AS event_id,
  JSON_VALUE(payload, '$.event_time')                              AS event_time_text,
  TO_TIMESTAMP(JSON_VALUE(payload, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS event_time,
  JSON_VALUE(payload, '$.service')                                 AS service,
  JSON_VALUE(payload, '$.method')                                  AS `method`,
  JSON_VALUE(payload, '$.route')                                   AS route,
  JSON_VALUE(payload, '$.path')                                    AS path,
  JSON_VALUE(payload, '$.status_code' RETURNING INT)               AS status_code,
  JSON_VALUE(payload, '$.duration_ms' RETURNING DOUBLE)            AS duration_ms,
  JSON_VALUE(payload, '$.user_id')                                 AS user_id,
  JSON_VALUE(payload, '$.client_address')                          AS client_address,
  JSON_VALUE(payload, '$.user_agent')                              AS user_agent,
  JSON_VALUE(payload, '$.referer')                                 AS referer,
  JSON_VALUE(payload, '$.trace_id')                                AS trace_id,
  TRY_CAST(JSON_VALUE(payload, '$.request_bytes') AS BIGINT)    AS request_bytes,
  TRY_CAST(JSON_VALUE(payload, '$.response_bytes') AS BIGINT)   AS response_bytes,
  JSON_VALUE(payload, '$.schema_version' RETURNING INT)            AS schema_version
FROM kafka_http_events;

-- The first rule a message breaks is its reason; NULL means a valid event.
CREATE TEMPORARY VIEW checked_http_events AS
SELECT
  *,
  CASE
    WHEN payload IS NULL                                   THEN 'empty message'
    WHEN NOT (payload IS JSON OBJECT)                      THEN 'not a JSON object'
    WHEN event_id IS NULL OR CHAR_LENGTH(TRIM(event_id)) = 0 THEN 'missing event_id'
    WHEN CHAR_LENGTH(event_id) > 128                       THEN 'event_id longer than 128 characters'
    WHEN event_time_text IS NULL                           THEN 'missing event_time'
    WHEN event_time IS NULL                                THEN 'event_time is not RFC 3339 UTC with milliseconds'
    WHEN service IS NULL                                   THEN 'missing service'
    WHEN `method` IS NULL                                  THEN 'missing method'
    WHEN route IS NULL                                     THEN 'missing route'
    WHEN path IS NULL                                      THEN 'missing path'
    WHEN status_code IS NULL OR status_code NOT BETWEEN 100 AND 599
                                                           THEN 'status_code is not an HTTP status'
    WHEN duration_ms IS NULL OR duration_ms < 0            THEN 'duration_ms is not a non-negative number'
  END AS error_reason
FROM parsed_http_events;

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
FROM checked_http_events
WHERE error_reason IS NULL;

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
