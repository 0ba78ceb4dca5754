"""User-Agent header -> device class and bot flag: one ordered list of rules, run as Python here (unit-tested on
real headers) and rendered into the SQL of the streaming job (raw_events.sql), where Flink's built-in functions
run them: no Python on the streaming job's SQL path (bench/udf.py measures the Python UDF alternative).

A rule matches the lower-cased header when it contains any of its words, or all of its `together` words, or when
its pattern matches. In SQL a rule's words and pattern are one REGEXP, an alternation (`crawl|spider|...`): one
pass over the header per rule. A substring search per word (POSITION) was measured 2.5x slower for the whole
list (the device class of bench/udf.py's headers on a mini-cluster: 56 against 23 µs per event; in the
streaming job the POSITIONs took a fifth of the TaskManager's time). Java's regex and Python's `re.search` read
the patterns the same way because they keep to a shared subset (alternation, `\\b`, `\\d`, `.*`, `^`, `$`; the
unit tests check it), and the same corpus of real headers runs through both: tests/unit/test_user_agent.py
(Python) and the streaming job on a mini-cluster (tests/flink/test_windows.py, SQL). The order carries the
exceptions: an iPad is a tablet, Android with "mobile" is a phone and without it a tablet, a bot that claims to be
a phone is a bot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    device: str
    words: tuple[str, ...] = ()  # any of them
    together: tuple[str, ...] = ()  # all of them
    pattern: str | None = None

    def matches(self, lowered: str) -> bool:
        return (
            any(word in lowered for word in self.words)
            or (bool(self.together) and all(word in lowered for word in self.together))
            or (self.pattern is not None and re.search(self.pattern, lowered) is not None)
        )


# crawlers, monitors, link unfurlers and HTTP libraries
BOT = Rule(
    "bot",
    words=("bot/", "crawl", "spider", "slurp", "scrape", "fetch", "monitor", "uptime", "headless", "lighthouse",
           "pingdom", "facebookexternalhit", "embedly", "curl/", "wget/", "python-requests", "python-httpx",
           "aiohttp", "go-http-client", "okhttp", "java/", "apache-httpclient", "libwww-perl", "k6/", "locust"),
    pattern=r"(bot\b|\bwrk\b)",
)  # fmt: skip
# the first rule that matches wins; no header at all is "unknown", a header that no rule matches is "other"
DEVICE_RULES: tuple[Rule, ...] = (
    Rule("unknown", pattern=r"^[ \t]*$"),
    BOT,
    Rule(
        "tv",
        words=("smart-tv", "smarttv", "googletv", "appletv", "hbbtv", "roku", "crkey", "bravia", "aftb", "aftm"),
        pattern=r"(tizen.*tv|webos.*tv)",
    ),
    Rule("console", words=("playstation", "xbox", "nintendo")),
    Rule("tablet", words=("ipad", "tablet", "kindle", "silk/", "playbook"), pattern=r"(sm-t\d|nexus (7|9|10)\b)"),
    # Android phones' browsers say "Mobile"; Android tablets' do not
    Rule("mobile", together=("android", "mobile")),
    Rule("tablet", words=("android",)),
    Rule("mobile", words=("iphone", "ipod", "mobile", "windows phone", "blackberry", "bb10", "opera mini", "iemobile")),
    Rule("desktop", words=("windows nt", "macintosh", "mac os x", "x11", "linux x86_64", "cros")),
)
DEVICE_CLASSES = ("bot", "tablet", "mobile", "tv", "console", "desktop", "other", "unknown")


def is_bot(user_agent: str | None) -> bool:
    """True when the User-Agent names an automated client; a missing header is not evidence either way."""
    return user_agent is not None and BOT.matches(user_agent.lower())


def device_class(user_agent: str | None) -> str:
    """One of DEVICE_CLASSES; the first rule that matches wins."""
    if user_agent is None:
        return "unknown"
    lowered = user_agent.lower()
    return next((rule.device for rule in DEVICE_RULES if rule.matches(lowered)), "other")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# what a word must escape to stand for itself in Java's and Python's regex alike (a backslash before a
# non-letter is a literal in both)
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def word_regex(word: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", word)


def rule_regex(rule: Rule) -> str | None:
    """The rule's words and pattern as one alternation (None for a rule of `together` words only)."""
    alternatives = [word_regex(word) for word in rule.words] + ([rule.pattern] if rule.pattern else [])
    return "|".join(alternatives) or None


def _condition(rule: Rule, lowered: str) -> str:
    """The rule as a SQL condition over the lower-cased header `lowered` (an expression)."""
    parts = []
    regex = rule_regex(rule)
    if regex is not None:
        parts.append(f"REGEXP({lowered}, {_literal(regex)})")
    if rule.together:
        parts.append("(" + " AND ".join(f"POSITION({_literal(w)} IN {lowered}) > 0" for w in rule.together) + ")")
    return " OR ".join(parts)


def device_class_sql(lowered: str) -> str:
    """The rules as a SQL CASE expression over the column `lowered`, the header already in lower case (computed
    once beside it: as an expression it would be computed again for every rule). The bot flag is then
    `device_class = 'bot'` (the same answer as `is_bot`, tested), not the bot rule a second time."""
    whens = "".join(f"\n    WHEN {_condition(rule, lowered)} THEN {_literal(rule.device)}" for rule in DEVICE_RULES)
    return f"CASE\n    WHEN {lowered} IS NULL THEN 'unknown'{whens}\n    ELSE 'other'\n  END"


def is_bot_sql(lowered: str) -> str:
    """The bot flag alone as a SQL expression over the lower-cased header `lowered` (FALSE without one, as
    `is_bot`)."""
    return f"COALESCE({_condition(BOT, lowered)}, FALSE)"
