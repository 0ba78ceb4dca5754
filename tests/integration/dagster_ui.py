"""Driving the Dagster UI (dagster-webserver 1.13) in a real browser: Debian's Chromium through Playwright.

The browser is `/usr/bin/chromium` (`python -m infra install --browser`; Playwright never downloads one).
What the pages look like, for the selectors below:

- global asset lineage: `/asset-groups`; groups start collapsed, Alt+E ("Expand all groups") expands them
  and writes them to the URL (`?expanded=...`); only nodes inside the visible part of the graph are rendered,
  and only at a zoom of 0.6 or more with their full name (`[data-tooltip]` of the node's name row);
- an asset: `/assets/<key path>`; its "Materialize…" button opens, for a partitioned asset, the dialog
  "Launch runs to materialize ..." (after an "Are you sure?" dialog when upstream assets were never
  materialized): a partition range typed as `[first...last]` + Enter, "Show all partitions" when the range is
  older than the dialog's default window (the last 90 days), then "Launch backfill"; a toast says
  "Created backfill <id>" with a "View" link to `/runs/b/<id>`;
- a backfill: `/runs/b/<id>`, its status tag ("In progress", "Succeeded", "Failed", ...) and one row per asset
  with its partitions targeted, in progress, materialized and failed.

The GraphQL API (`<base_url>/graphql`) says when the code location is loaded and how a backfill ended.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import BrowserContext, Locator, Page, Playwright, ViewportSize
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from config.settings import REPO_ROOT
from infra.install import CHROMIUM

ARTIFACTS_DIR = REPO_ROOT / "var" / "test-artifacts"

# Chromium's own connections to the outside (component updates, sync, QUIC probes, ...) are refused on the
# test machines; without these flags it waits on them and pages stall.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# The webserver greets a new browser on localhost with a "Join the Dagster community" dialog over every page;
# it stays away once the browser has dismissed it (the UI's own localStorage key).
_SKIP_COMMUNITY_DIALOG = "try { window.localStorage.setItem('communityNux', '\"1\"'); } catch (e) {}"

SUCCEEDED = ("COMPLETED_SUCCESS", "COMPLETED")
FAILED = ("FAILED", "FAILING", "COMPLETED_FAILED", "CANCELED", "CANCELING")


# ---------------------------------------------------------------------------- browser
def launch_chromium(
    playwright: Playwright, viewport: tuple[int, int] = (1600, 1000), timeout_ms: float = 30_000
) -> BrowserContext:
    """Headless Debian Chromium with a fresh user-data dir; close the context when done.

    The user-data dir is removed when this Python process exits (Chromium still writes to it while the
    context's `close` event runs).

    `timeout_ms` is Playwright's default for every action and wait on the context's pages.
    """
    user_data = Path(tempfile.mkdtemp(prefix="chromium-"))
    atexit.register(shutil.rmtree, user_data, ignore_errors=True)
    context = playwright.chromium.launch_persistent_context(
        str(user_data),
        executable_path=str(CHROMIUM),
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport={"width": viewport[0], "height": viewport[1]},
    )
    context.set_default_timeout(timeout_ms)
    context.add_init_script(_SKIP_COMMUNITY_DIALOG)
    return context


def screenshot(page: Page, name: str) -> Path:
    """Save a PNG of the page as var/test-artifacts/<name>.png (git-ignored) and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") + ".png")
    page.screenshot(path=str(path))
    return path


# ---------------------------------------------------------------------------- GraphQL
def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """The `data` of a GraphQL query against the webserver; raises on transport or GraphQL errors."""
    response = httpx.post(f"{base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


_WORKSPACE = """
{ workspaceOrError { __typename
    ... on PythonError { message }
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename
          ... on PythonError { message }
          ... on RepositoryLocation { repositories {
              assetNodes { assetKey { path } groupName isAutoCreatedStub } } } } } } } }
"""


def wait_code_locations_loaded(base_url: str, timeout: float = 180) -> list[tuple[list[str], str]]:
    """Wait until every code location of the webserver is loaded; return its assets as (key path, group).

    Stubs are left out: the keys Dagster creates for dependencies nothing defines (dbt sources without an
    asset), which the UI hides by default.

    Fails at once with the location's error when one fails to load (an import error, a failing dbt parse).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = graphql(base_url, _WORKSPACE)["workspaceOrError"]
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        else:
            entries = last.get("locationEntries") or []
            errors = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
            if errors:
                messages = "\n".join(f"{e['name']}: {e['locationOrLoadError']['message']}" for e in errors)
                raise AssertionError(f"code location failed to load:\n{messages}")
            if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
                return [
                    (node["assetKey"]["path"], node["groupName"])
                    for entry in entries
                    for repo in entry["locationOrLoadError"]["repositories"]
                    for node in repo["assetNodes"]
                    if not node["isAutoCreatedStub"]
                ]
        time.sleep(1)
    raise AssertionError(f"code locations not loaded after {timeout:.0f} s; last answer: {last!r}")


# ---------------------------------------------------------------------------- global asset lineage
_GRAPH = "svg:has(foreignObject)"

# Every rendered node of the graph: groups (foreignObject.group, with their name) and assets (the name row's
# data-tooltip holds the whole last component of the key; the visible text is middle-truncated).
_READ_NODES = """svg => [...svg.querySelectorAll(':scope > foreignObject')].flatMap(fo => {
  const named = fo.querySelector('[data-tooltip]');
  if (!named) return [];
  const box = ['x', 'y', 'width', 'height'].map(a => parseFloat(fo.getAttribute(a)));
  return [{group: fo.classList.contains('group'), label: named.getAttribute('data-tooltip'), box}];
})"""


def asset_graph_nodes(
    page: Page, base_url: str, timeout: float = 60, screenshot_name: str | None = None
) -> set[tuple[str, str]]:
    """Open the global asset lineage, expand every group and return its asset nodes as (group, label) pairs.

    The label is what the UI shows on the node: the last component of the asset key (`kafka/http_events` and
    `iceberg/raw/http_events` are both `http_events`, in groups `ingest` and `lake`). The group is the expanded
    group box the node sits in ("" when the graph has no groups). The browser's viewport is grown until the
    whole graph is drawn at zoom 1 (the UI draws only the visible nodes), so labels are never truncated; with
    `screenshot_name`, that whole graph is saved (see `screenshot`) before the viewport is set back.
    """
    page.goto(f"{base_url}/asset-groups")
    graph = page.locator(_GRAPH).first
    graph.wait_for(timeout=timeout * 1000)
    if "expanded=" not in page.url:
        page.keyboard.press("Alt+KeyE")  # "Expand all groups"; with a single group there is nothing to expand
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_url(re.compile(r"[?&]expanded="), timeout=5000)
    _settle(lambda: graph.evaluate(_READ_NODES), timeout)
    window = page.viewport_size or {"width": 1600, "height": 1000}
    try:
        return _read_graph(page, graph, window, timeout, screenshot_name)
    finally:
        if page.viewport_size != window:
            page.set_viewport_size(window)


def _read_graph(
    page: Page, graph: Locator, window: ViewportSize, timeout: float, screenshot_name: str | None
) -> set[tuple[str, str]]:
    width = float(graph.get_attribute("width") or 0)
    height = float(graph.get_attribute("height") or 0)
    frame = graph.evaluate("svg => { const r = svg.parentElement.parentElement.getBoundingClientRect();"
                           " return [r.width, r.height]; }")  # fmt: skip
    want = (int(width + window["width"] - frame[0] + 80), int(height + window["height"] - frame[1] + 80))
    if want[0] > window["width"] or want[1] > window["height"]:
        page.set_viewport_size({"width": max(want[0], window["width"]), "height": max(want[1], window["height"])})
        page.reload()  # the URL keeps the expanded groups; the first layout is centred at zoom 1
        graph = page.locator(_GRAPH).first
        graph.wait_for(timeout=timeout * 1000)
    nodes: list[dict[str, Any]] = _settle(lambda: graph.evaluate(_READ_NODES), timeout)
    if screenshot_name:
        screenshot(page, screenshot_name)
    groups = [n for n in nodes if n["group"]]
    found = set()
    for node in (n for n in nodes if not n["group"]):
        x, y, w, h = node["box"]
        centre = (x + w / 2, y + h / 2)
        around = [
            g for g in groups if g["box"][0] <= centre[0] <= g["box"][0] + g["box"][2]
            and g["box"][1] <= centre[1] <= g["box"][1] + g["box"][3]
        ]  # fmt: skip
        innermost = min(around, key=lambda g: g["box"][2] * g["box"][3], default=None)
        found.add((innermost["label"] if innermost else "", node["label"]))
    return found


def asset_graph_labels(page: Page, base_url: str, timeout: float = 60) -> set[str]:
    """The labels of the asset nodes the global asset lineage shows (every group expanded)."""
    return {label for _, label in asset_graph_nodes(page, base_url, timeout)}


def _settle(read: Callable[[], list[dict[str, Any]]], timeout: float, quiet: float = 1.5) -> list[dict[str, Any]]:
    """Read the graph's nodes until the same non-empty answer comes back for `quiet` seconds (the layout
    is computed in a web worker and drawn in several passes)."""
    deadline = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        now = read()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif last and time.monotonic() - stable_since >= quiet:
            return last
        time.sleep(0.25)
    raise AssertionError(f"the asset graph did not settle in {timeout:.0f} s; last nodes: {last!r}")


# ---------------------------------------------------------------------------- backfills
def launch_backfill_from_ui(
    page: Page, base_url: str, asset_key_path: list[str], first_day: str, last_day: str, timeout: float = 60
) -> str:
    """On the asset's page: Materialize…, the day partitions `first_day`..`last_day` (YYYY-MM-DD, both
    included), Launch backfill. Returns the backfill id the UI reports ("Created backfill <id>")."""
    days = (date.fromisoformat(last_day) - date.fromisoformat(first_day)).days + 1
    if days < 1:
        raise ValueError(f"last day {last_day} is before the first {first_day}")
    ms = timeout * 1000
    page.goto(f"{base_url}/assets/{'/'.join(quote(part, safe='') for part in asset_key_path)}")
    page.get_by_role("button", name="Materialize").first.click(timeout=ms)  # "Materialize…", once loaded
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    # notices before the launch dialog, each confirmed: "Are you sure?" (upstream assets not materialized yet),
    # "Additional assets will be materialized" (the other tables of a multi-asset)
    # A notice can be re-rendered while it animates in (the page finishes loading behind it): its button then
    # detaches under the click, so each click is short and the loop looks again.
    confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        confirm.or_(launch).first.wait_for(timeout=ms)
        if launch.is_visible():
            break
        try:
            confirm.first.click(timeout=5_000)
        except PlaywrightTimeoutError:
            continue
    launch.wait_for(timeout=ms)
    show_all = launch.get_by_role("button", name="Show all partitions")
    if show_all.is_visible():  # the dialog opens on the last 90 days only
        show_all.click()
    # the selection is empty until typed; Enter commits it
    selection = launch.get_by_role("textbox")
    selection.fill(f"[{first_day}...{last_day}]")
    selection.press("Enter")
    launch.get_by_text(f"{days} partition{'s' if days > 1 else ''}", exact=True).wait_for(timeout=ms)
    launch.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"^Created backfill \w+")).first
    try:
        created.wait_for(timeout=ms)
    except PlaywrightTimeoutError as exc:
        raise AssertionError(
            f"no backfill was created; screenshot {screenshot(page, 'launch-backfill-failed')}"
        ) from exc
    match = re.search(r"Created backfill (\w+)", created.inner_text())
    assert match, created.inner_text()
    return match.group(1)


_BACKFILL = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PythonError { message }
  ... on BackfillNotFoundError { message }
  ... on PartitionBackfill { id status partitionNames timestamp endTimestamp error { message }
    runs(limit: 100) { id status creationTime startTime endTime }
    assetBackfillData { assetBackfillStatuses { __typename
      ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted numPartitionsInProgress
                                           numPartitionsMaterialized numPartitionsFailed } } } } } }
"""


def backfill_state(base_url: str, backfill_id: str) -> dict[str, Any]:
    """The backfill as GraphQL reports it: status, partitions, times (epoch seconds), runs (with their creation,
    start and end times) and per-asset partition counts."""
    result: dict[str, Any] = graphql(base_url, _BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise AssertionError(f"backfill {backfill_id}: {result}")
    return result


def wait_backfill_finished(page: Page | None, base_url: str, backfill_id: str, timeout: float = 600) -> dict[str, Any]:
    """Wait until the backfill completed successfully: status COMPLETED_SUCCESS, every run succeeded, every
    targeted partition of every asset materialized. Fails at once when it fails or is canceled, and on
    timeout, with the last state seen.

    With a `page`, then opens the backfill's page (`/runs/b/<id>`) and waits for it to say "Succeeded" and
    "100% completed" on every asset's row.
    Returns the final state (see `backfill_state`).
    """
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while True:
        state = backfill_state(base_url, backfill_id)
        if state["status"] in FAILED:
            raise AssertionError(f"backfill {backfill_id} failed: {_summary(state, base_url)}")
        if state["status"] in SUCCEEDED:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"backfill {backfill_id} not finished after {timeout:.0f} s: {_summary(state)}")
        time.sleep(2)
    counts = [s for s in state["assetBackfillData"]["assetBackfillStatuses"] if "numPartitionsTargeted" in s]
    incomplete = [
        s for s in counts if s["numPartitionsFailed"] or s["numPartitionsMaterialized"] != s["numPartitionsTargeted"]
    ]
    failed_runs = [r for r in state["runs"] if r["status"] != "SUCCESS"]
    if incomplete or failed_runs or not counts:
        raise AssertionError(f"backfill {backfill_id} completed, but not all of it: {_summary(state, base_url)}")
    if page is not None:
        page.goto(f"{base_url}/runs/b/{backfill_id}")
        page.get_by_text("Succeeded", exact=True).first.wait_for(timeout=60_000)  # the backfill's status tag
        completed = page.get_by_text("100% completed", exact=True)  # one row per asset
        completed.nth(len(counts) - 1).wait_for(timeout=60_000)
        assert completed.count() == len(counts), f"{completed.count()} of {len(counts)} assets shown completed"
    return state


_RUN_FAILURES = """
query ($runId: ID!) { logsForRun(runId: $runId, limit: 1000) { __typename
  ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message } } } } }
"""


def run_failures(base_url: str, run_id: str) -> list[str]:
    """Why a run failed: its step failures (the step's error) and its run failure message."""
    events = graphql(base_url, _RUN_FAILURES, {"runId": run_id})["logsForRun"].get("events") or []
    return [
        f"{e['stepKey']}: {e['error']['message']}" if e["__typename"] == "ExecutionStepFailureEvent" else e["message"]
        for e in events
        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
    ]


def _summary(state: dict[str, Any], base_url: str | None = None) -> str:
    counts = [
        f"{'/'.join(s['assetKey']['path'])}: {s['numPartitionsMaterialized']}/{s['numPartitionsTargeted']} "
        f"materialized, {s['numPartitionsInProgress']} in progress, {s['numPartitionsFailed']} failed"
        for s in (state.get("assetBackfillData") or {}).get("assetBackfillStatuses", [])
        if "numPartitionsTargeted" in s
    ]
    return (
        f"status {state.get('status')}, partitions {state.get('partitionNames')}, "
        f"runs {[(r['id'][:8], r['status']) for r in state.get('runs', [])]}, {'; '.join(counts) or 'no counts'}"
        + (f", error: {state['error']['message'][:2000]}" if state.get("error") else "")
        + "".join(
            f"\nrun {r['id']} failed:\n" + "\n".join(m[:3000] for m in run_failures(base_url, r["id"]))
            for r in state.get("runs", [])
            if base_url and r["status"] == "FAILURE"
        )
    )
