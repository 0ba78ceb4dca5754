"""Moved to infra.flink_deploy; this name stays only while the control plane's imports move over."""

from flink_jobs import JOBS as JOBS
from infra.flink_deploy import *  # noqa: F403
