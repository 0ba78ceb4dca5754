"""Load the SQL files of a job: `{{ name }}` placeholders, statements separated by `;` at a line end."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from flink_jobs import SQL_DIR

if TYPE_CHECKING:
    from pyflink.table import StatementSet, TableEnvironment

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


def strip_comments(text: str) -> str:
    """Drop whole-line `--` comments (they may name placeholders, which must not be rendered)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def render(text: str, params: dict[str, str]) -> str:
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in params})
    if missing:
        raise KeyError(f"SQL placeholders without a value: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


def statements(text: str) -> list[str]:
    """Split on `;` that ends a line; drop empty chunks."""
    chunks = re.split(r";[ \t]*(?:\n|$)", strip_comments(text))
    return [chunk.strip() for chunk in chunks if chunk.strip()]


def load(name: str, params: dict[str, str] | None = None) -> list[str]:
    path = SQL_DIR / name if not Path(name).is_absolute() else Path(name)
    return statements(render(strip_comments(path.read_text()), params or {}))


def with_options(options: dict[str, str]) -> str:
    """Render a `WITH (...)` option list body, quoting keys and values."""

    def q(value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    return ",\n  ".join(f"{q(k)} = {q(v)}" for k, v in options.items())


def string_list(values: Iterable[str]) -> str:
    """Render strings as a SQL list of string literals (`'a', 'b'`), for `IN ({{ name }})`."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def statement_set(t_env: TableEnvironment, files: Iterable[str], params: dict[str, str]) -> StatementSet:
    """Run the DDL of `files` in order; collect their INSERTs into one statement set (one job, one read of the
    source, every sink committing on the same checkpoints)."""
    inserts = t_env.create_statement_set()
    for name in files:
        for statement in load(name, params):
            if statement.lstrip().upper().startswith("INSERT"):
                inserts.add_insert_sql(statement)
            else:
                t_env.execute_sql(statement)
    return inserts
