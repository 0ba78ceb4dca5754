-- What dashboards read for user sessions (dbt/macros/lambda.sql); a session belongs to the day it started.
{{ serving_view('user_sessions', 'session_start', [
    'session_start', 'session_end', 'service', 'user_key', 'user_id', 'last_request_at', 'request_count',
    'error_count', 'distinct_routes', 'routes',
]) }}
