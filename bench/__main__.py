"""`make bench`: run every benchmark in turn and print one JSON object per benchmark."""

from __future__ import annotations

import json

from bench import interceptor, platform


def main() -> None:
    print(json.dumps({"platform": platform.run(), "interceptor": interceptor.run()}, indent=2))


if __name__ == "__main__":
    main()
