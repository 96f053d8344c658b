"""Run every benchmark in one process (one Ray start), then one summary table against the targets.

    .venv/bin/python bench/run_all.py                         # `make bench`: CPU, bench-cpu preset
    .venv/bin/python bench/run_all.py --config bench-gpu --device cuda \\
        --ingest-args "--width 1920 --height 1080"              # what bench/gpu.sh runs

Each benchmark prints its own table (last line: its headline) with the command that reproduces
it alone; ``--<name>-args`` passes extra options to one of them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import batch, generate, ingest, latency, live, serve, storage
from bench.common import Table, git_commit, log, machine_line

BENCHES = {
    "ingest": ingest,
    "latency": latency,
    "generate": generate,
    "storage": storage,
    "serve": serve,
    "live": live,
    "batch": batch,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="bench-cpu")
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny inputs, one round each")
    p.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    p.add_argument("--gpu-targets", action="store_true", help="judge against the GPU targets")
    for name in BENCHES:
        # the live benchmark's watches need a model that answers: the demo model, whatever --config says
        default = "--config demo" if name == "live" else ""
        p.add_argument(f"--{name}-args", default=default, help=f"extra options for bench/{name}.py")
    return p


def targets(gpu: bool) -> dict[str, tuple[str, str, float]]:
    """headline key -> (description, comparison, target) as set in the benchmark issue."""
    return {
        "ingest": ("ingest: pipeline / min(decode, encode)", ">=", 0.9 if gpu else 0.8),
        "ingest_rate": (
            "ingest: pipeline video-s/s (GPU: 1080p30 at 1 fps)",
            ">=" if gpu else "",
            50.0 if gpu else float("nan"),
        ),
        "length": ("latency: 60 min / 1 min cached", "<=", 1.2),
        "naive": ("latency: naive / cached, 10 questions", ">=", 10.0),
        "ttft": ("latency: first token / bare LM prefill", "<=", 2.0),
        "generate": ("generate: naive / Heron ms per token, longest N", "", float("nan")),
        "storage": ("storage: MB of Redis per hour of video", "", float("nan")),
        "serve_http": ("serve: HTTP / in-process, cached question p50", "<=", 1.2),
        "serve_clients": ("serve: 32 concurrent clients / 1, questions/s", ">=", 10.0 if gpu else 4.0),
        "live_latency": ("live: alert latency p50, s (2-s windows)", "", float("nan")),
        "live_streams": ("live: streams one core keeps up with", "", float("nan")),
        "live_scoring": ("live: batched / one-by-one watch scoring, 8 x 4", "", float("nan")),
        # GPU target: >= 0.9 x the encode bound (compare batch video-s/s with the ingest table's encode row)
        "batch": ("batch: heron batch / one by one, archive video-s/s", "" if gpu else ">=", 2.0),
        "batch_resume": ("batch: resuming a finished job, s", "", float("nan")),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    git_commit()  # pin the commit the run started on
    common = (
        ["--config", args.config]
        + (["--device", args.device] if args.device else [])
        + (["--quick"] if args.quick else [])
    )
    results, seconds, failed = {}, {}, []
    clock = time.perf_counter()
    for name in args.only:
        log(f"=== {name}")
        start = time.perf_counter()
        try:
            results[name] = BENCHES[name].main(common + shlex.split(getattr(args, f"{name}_args")))
        except Exception:  # one broken benchmark must not cost the others' numbers (a GPU lease is one shot)
            traceback.print_exc()
            failed.append(name)
        seconds[name] = time.perf_counter() - start
        print(flush=True)
    total = time.perf_counter() - clock

    values = {}
    if "ingest" in results:
        values["ingest"] = results["ingest"]["ratio"]
        values["ingest_rate"] = results["ingest"]["pipeline_video_s_per_s"]
    if "latency" in results:
        values |= {
            "length": results["latency"]["length_ratio"],
            "naive": results["latency"]["naive_speedup"],
            "ttft": results["latency"]["ttft_ratio"],
        }
    if "generate" in results:
        values["generate"] = results["generate"]["ratio"]
    if "storage" in results:
        values["storage"] = results["storage"]["mb_per_hour"]
    if "serve" in results:
        values["serve_http"] = results["serve"]["http_ratio"]
        values["serve_clients"] = results["serve"]["concurrency_speedup"]
    if "live" in results:
        values["live_latency"] = results["live"]["alert_p50_s"]
        values["live_streams"] = results["live"]["streams_per_core"]
        values["live_scoring"] = results["live"]["scoring_speedup"]
    if "batch" in results:
        values["batch"] = results["batch"]["speedup"]
        values["batch_resume"] = results["batch"]["resume_s"]
    table = Table(
        f"Summary ({args.config}{', quick smoke run: not a measurement' if args.quick else ''})",
        ["headline", "value", "target", "met"],
    )
    for key, (description, op, target) in targets(args.gpu_targets).items():
        if key not in values:
            continue
        value = values[key]
        met = "-" if not op else ("yes" if (value >= target if op == ">=" else value <= target) else "NO")
        table.add(description, value, f"{op} {target:g}" if op else "-", met)
    table.notes += [", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()), machine_line()]
    if failed:
        table.notes.append(f"FAILED (traceback above): {', '.join(failed)}")
    table.headline = f"HEADLINE bench: total {total:.0f} s for {', '.join(args.only)}"
    print(table.render(), flush=True)
    if failed:
        raise SystemExit(f"bench/run_all.py: {', '.join(failed)} failed; the other results are above")
    return {"values": values, "seconds": seconds, "total_s": total}


if __name__ == "__main__":
    main()
