"""`make bench`: run every benchmark in turn and print one JSON object per benchmark. The soak (bench/soak.py,
about an hour) and the de-duplication state benchmark (bench/dedup_state.py, about 20 minutes) run on their
own: `python -m bench.soak`, `python -m bench.dedup_state`."""

from __future__ import annotations

import argparse
import json

from bench import catalog, control_plane, dbt, dbt_memory, interceptor, platform, streaming, throughput, udf


def main() -> None:
    argparse.ArgumentParser(prog="python -m bench", description=__doc__).parse_args()  # --help, before an hour of work
    results = {
        "platform": platform.run(),
        "interceptor": interceptor.run(),
        "catalog": catalog.run(),
        "streaming": streaming.run(),
        "throughput": {k: v for k, v in throughput.run().items() if k != "timeline"},
        "udf": udf.run(),
        "dbt": dbt.run(),
        "dbt_memory": dbt_memory.run(),
        "control_plane": control_plane.run(),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
