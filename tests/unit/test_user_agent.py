"""User-Agent rules (flink_jobs/user_agent.py): device class and bot flag of real headers. The same corpus runs
through the streaming job on a mini-cluster (tests/flink/test_windows.py), where the rules are Flink's built-in
REGEXPs: both must give these answers."""

# ruff: noqa: E501 (real headers are long; one per line reads best)
from __future__ import annotations

import re

import pytest

from flink_jobs import user_agent

# (User-Agent, device class); the bot flag is device class == "bot"
# fmt: off
CORPUS: list[tuple[str | None, str]] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "desktop"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "desktop"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "mobile"),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "tablet"),
    ("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "tablet"),
    ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.2.1 like Chrome/131.0.0.0 Safari/537.36", "tablet"),
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 7.0 TV Safari/537.36", "tv"),
    ("Roku/DVP-12.5 (12.5.0.4174-56)", "tv"),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/8.20) AppleWebKit/605.1.15 (KHTML, like Gecko)", "console"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "bot"),
    ("curl/8.5.0", "bot"),
    ("Wget/1.21.4", "bot"),
    ("python-requests/2.32.3", "bot"),
    ("python-httpx/0.28.1", "bot"),
    ("Go-http-client/2.0", "bot"),
    ("okhttp/4.12.0", "bot"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "bot"),
    ("UptimeRobot/2.0; http://www.uptimerobot.com/", "bot"),
    ("wrk/4.2.0", "bot"),
    ("MyCompanyApp/3.2 (build 881)", "other"),
    ("", "unknown"),
    (None, "unknown"),
]
# fmt: on


@pytest.mark.parametrize(("header", "expected"), CORPUS)
def test_device_class(header: str | None, expected: str) -> None:
    assert user_agent.device_class(header) == expected
    assert user_agent.is_bot(header) is (expected == "bot")


def test_every_device_class_is_in_the_corpus() -> None:
    assert {expected for _, expected in CORPUS} == set(user_agent.DEVICE_CLASSES)


@pytest.mark.parametrize("rule", user_agent.DEVICE_RULES, ids=lambda rule: rule.device)
def test_rules_are_portable_to_java(rule: user_agent.Rule) -> None:
    # Java's regex reads a pattern the same way only if it keeps to the shared subset (alternation, \b, \d, .*):
    # no Python-only syntax such as (?P<name>...), \Z or \A, no inline flags; everything in lower case, as the
    # header is lower-cased first
    for text in (*rule.words, *rule.together, rule.pattern or ""):
        assert text == text.lower()
        assert "'" not in text  # rendered into a SQL string literal
    assert not re.search(r"\(\?P|\\Z|\\A|\(\?[a-z]", rule.pattern or "")


def test_the_sql_rules_are_the_same_rules() -> None:
    # what the streaming job runs is rendered from the same list: each rule's words and pattern appear in order
    sql = user_agent.device_class_sql("ua")
    positions = [sql.index(f"THEN '{rule.device}'", start) for start, rule in _starts(sql)]
    assert positions == sorted(positions)
    for rule in user_agent.DEVICE_RULES:
        regex = user_agent.rule_regex(rule)
        if regex is not None:
            assert f"REGEXP(ua, '{regex}')" in sql
        for word in rule.together:
            assert f"POSITION('{word}' IN ua) > 0" in sql


def test_a_rules_regex_is_its_words_and_its_pattern() -> None:
    # each word stands for itself (escaped where it has a regex character); the pattern joins as it is
    for header, _ in CORPUS:
        lowered = (header or "").lower()
        for rule in user_agent.DEVICE_RULES:
            regex = user_agent.rule_regex(rule)
            if regex is not None:
                expected = any(w in lowered for w in rule.words) or (
                    rule.pattern is not None and re.search(rule.pattern, lowered) is not None
                )
                assert (re.search(regex, lowered) is not None) == expected, (rule.device, header)
    assert user_agent.word_regex("a.b (c)|d-e/f") == r"a\.b \(c\)\|d-e/f"


def test_the_bot_flag_is_the_bot_device_class() -> None:
    # the streaming job writes is_bot as device_class = 'bot' (raw_events.sql)
    for header, _ in CORPUS:
        assert user_agent.is_bot(header) == (user_agent.device_class(header) == "bot"), header


def _starts(sql: str) -> list[tuple[int, user_agent.Rule]]:
    found, start = [], 0
    for rule in user_agent.DEVICE_RULES:
        start = sql.index("WHEN", start + 1)
        found.append((start, rule))
    return found
