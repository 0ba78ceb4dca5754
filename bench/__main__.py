"""`make bench`: run every benchmark in turn and print one JSON object per benchmark."""

from __future__ import annotations

import json

from bench import catalog, control_plane, dbt, interceptor, platform, streaming, udf


def main() -> None:
    results = {
        "platform": platform.run(),
        "interceptor": interceptor.run(),
        "catalog": catalog.run(),
        "streaming": streaming.run(),
        "udf": udf.run(),
        "dbt": dbt.run(),
        "control_plane": control_plane.run(),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
