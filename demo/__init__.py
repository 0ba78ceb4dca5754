"""A demo web shop that uses the interceptor, and a traffic generator that drives it (`make up` starts both)."""
