"""User-Agent header -> device class and bot flag: plain Python rules, unit-tested, imported by the Flink
UDFs (flink_jobs/udfs.py) and rendered into SQL (the bot flag).

The bot flag has a built-in SQL alternative and uses it: `REGEXP(user_agent, BOT_PATTERN)` in raw_events.sql
(Java's regex and Python's `re.search` agree on this pattern; tests/unit/test_user_agent.py and the raw_events
mini-cluster test hold both to the same answers). The device class is a Python UDF: ordered rules with
exceptions (an iPad is a tablet, Android with "Mobile" is a phone and without it a tablet, a Windows tablet
says "Touch" but a Windows laptop can too) read as code and are tested as code; `bench/udf.py` measures what
running them in Python costs next to the built-in regex.
"""

from __future__ import annotations

import re

# crawlers, monitors, link unfurlers and HTTP libraries: one case-insensitive alternation, valid in Java and Python
BOT_PATTERN = (
    r"(?i)(bot\b|bot/|crawl|spider|slurp|scrape|fetch|monitor|uptime|headless|lighthouse|pingdom|"
    r"facebookexternalhit|embedly|curl/|wget/|python-requests|python-httpx|aiohttp|go-http-client|"
    r"okhttp|java/|apache-httpclient|libwww-perl|\bwrk\b|k6/|locust)"
)
DEVICE_CLASSES = ("bot", "tablet", "mobile", "tv", "console", "desktop", "other", "unknown")

_BOT = re.compile(BOT_PATTERN)
_TV = re.compile(r"(?i)(smart-?tv|googletv|appletv|hbbtv|roku|crkey|tizen.*tv|webos.*tv|bravia|aftb|aftm)")
_CONSOLE = re.compile(r"(?i)(playstation|xbox|nintendo)")
_TABLET = re.compile(r"(?i)(ipad|tablet|kindle|silk/|playbook|sm-t\d|nexus (7|9|10)\b)")
_MOBILE = re.compile(r"(?i)(iphone|ipod|mobile|windows phone|blackberry|bb10|opera mini|iemobile)")
_DESKTOP = re.compile(r"(?i)(windows nt|macintosh|mac os x|x11|linux x86_64|cros)")


def is_bot(user_agent: str | None) -> bool:
    """True when the User-Agent names an automated client; a missing header is not evidence either way."""
    return bool(user_agent) and _BOT.search(user_agent) is not None  # type: ignore[arg-type]


def device_class(user_agent: str | None) -> str:
    """One of DEVICE_CLASSES; the first rule that matches wins."""
    if user_agent is None or not user_agent.strip():
        return "unknown"
    if _BOT.search(user_agent):
        return "bot"
    if _TV.search(user_agent):
        return "tv"
    if _CONSOLE.search(user_agent):
        return "console"
    if _TABLET.search(user_agent):
        return "tablet"
    if "android" in user_agent.lower():
        # Android phones' browsers say "Mobile"; Android tablets' do not
        return "mobile" if "mobile" in user_agent.lower() else "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    if _DESKTOP.search(user_agent):
        return "desktop"
    return "other"
