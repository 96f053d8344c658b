"""``heron batch INPUT`` and ``heron jobs``: archives of videos x questions, as resumable jobs."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import plural

jobs_app = typer.Typer(help="list, show, cancel or remove batch jobs", no_args_is_help=True)

STALE_S = 30.0  # a "running" job whose heartbeat is older than this lost its process


def batch(
    ctx: typer.Context,
    inputs: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="a directory (recursive), a quoted glob, or a manifest (.txt, .csv, .jsonl) of paths/URLs",
        ),
    ],
    question: Annotated[
        list[str] | None, typer.Option("--question", "-q", help="a question for every video (repeatable)")
    ] = None,
    questions: Annotated[
        str | None, typer.Option("--questions", help="a file of questions, one per line", show_default=False)
    ] = None,
    out_path: Annotated[
        str | None, typer.Option("--out", help="write the results here (JSONL; .parquet with --parquet)")
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", help="the job's name [default: derived from inputs, questions, model]")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="continue this job (the same as --job of an existing job)")
    ] = None,
    start: Annotated[float | None, typer.Option("--from", help="start of every video's range, seconds")] = None,
    end: Annotated[float | None, typer.Option("--to", help="end of every video's range, seconds")] = None,
    keyframes: Annotated[
        bool, typer.Option("--keyframes", help="decode keyframes only: a fast skim (its own cache)")
    ] = False,
    parquet: Annotated[bool, typer.Option("--parquet", help="write --out as Parquet instead of JSONL")] = False,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, help="videos in flight at once (each with its own decode actors)")
    ] = 2,
    config: options.Config = None,
    model: options.Model = None,
    redis_url: options.RedisUrl = None,
    ray_address: options.RayAddress = None,
    json: options.Json = False,
    progress: options.Progress = None,
    debug: options.Debug = False,
) -> None:
    """Answer questions about every video of an archive; rerun the same command to resume.

    Each (video, question) is answered once and kept in Redis; a video that cannot be decoded is a
    row with its error. Exit status 1 when any row failed (or was left pending by a cancel).
    """
    from heron.errors import ConfigError
    from heron.pipeline.inputs import read_inputs, read_questions

    out: Output = ctx.obj
    out.configure(json=json, debug=debug, progress=progress)
    if job and resume and job != resume:
        raise ConfigError(f"--job {job} and --resume {resume} name two jobs; give one")
    asked = list(question or []) + (read_questions(questions) if questions else [])
    items = read_inputs(inputs, asked, start=start, end=end)  # every typo is one line, before Ray starts
    cfg = options.pipeline_config(config, model, out)
    if keyframes:  # checked like the config's own fields (decoder: decord cannot skip frames)
        cfg.decode = dataclasses.replace(cfg.decode, keyframes=True)
    cfg.ingest = dataclasses.replace(cfg.ingest, parallel_ingests=max(parallel, cfg.ingest.parallel_ingests))
    from heron.service import Heron
    from heron.service.batch import BatchRun
    from heron.state import JobStore, RedisConnection, ensure_redis

    if resume and JobStore(RedisConnection(ensure_redis(redis_url))).get_job(resume) is None:
        raise ConfigError(f"--resume {resume}: no such job (`heron jobs ls` lists them)")
    videos = len({i.video for i in items})
    out.note(f"{plural(videos, 'video')}, {plural(len(items), 'question')} to answer")
    with out.working():
        out.status("starting Redis")
        # the batch's progress bar says what happens (Ray and the model start behind it)
        with Heron(cfg, redis_url=redis_url, ray_address=ray_address, progress=False) as heron:
            run = BatchRun(heron, items, job_id=job or resume, videos_in_flight=parallel, progress=out.interactive)
            out.clear_status()
            summary = run.run(out_path, parquet=parquet)
    if out.json:
        out.emit_json(summary.to_dict())
    else:
        out.print(
            f"job {summary.job_id}: {summary.status}; {summary.done} answered, {summary.failed} failed, "
            f"{summary.pending} pending, {summary.skipped} already done before this run ({summary.seconds:.1f} s)"
        )
        if summary.out:
            out.print(f"  results: {summary.out}")
        if summary.failed:
            out.note(f"  failures are rows with an error (`heron jobs show {summary.job_id} --failed`)")
    if not summary.ok:
        raise typer.Exit(1)


@jobs_app.command("ls")
def jobs_ls(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", help="how many of the newest jobs")] = 20,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """List jobs, newest first: status, counts, age."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    jobs, _ = _stores(redis_url)
    found = jobs.list_jobs(limit=limit)
    if out.json:
        out.emit_json([_shown(j) for j in found])
        return
    if not found:
        out.note("no jobs")
    for job in found:
        counts = job.counters
        out.print(
            f"{job.job_id}  {job.kind}  {_status(job)}  done {counts.get('done', 0)}  failed {counts.get('failed', 0)}"
            f"  pending {counts.get('pending', 0)}  {_when(job.created_at)}"
        )


@jobs_app.command("show")
def jobs_show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="a job id (`heron jobs ls`)")],
    failed: Annotated[bool, typer.Option("--failed", help="also list the rows that failed, with their errors")] = False,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """One job: what it asks, its settings, counts and status."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    jobs, results = _stores(redis_url)
    job = _job(jobs, job_id)
    errors = [r for r in results.rows(job_id) if r.get("error")] if failed else []
    if out.json:
        out.emit_json({**_shown(job), **({"failures": errors} if failed else {})})
        return
    params, counts = job.params, job.counters
    out.print(f"{job.job_id}  ({job.kind})  {_status(job)}")
    out.print(f"  created {_when(job.created_at)}, updated {_when(job.updated_at)}")
    if job.kind == "batch":
        out.print(f"  {plural(params.get('videos', 0), 'video')}, {plural(params.get('items', 0), 'question')} in all")
        out.print(f"  model {params.get('settings', {}).get('model')}")
    out.print(f"  done {counts.get('done', 0)}, failed {counts.get('failed', 0)}, pending {counts.get('pending', 0)}")
    if job.error:
        out.print(f"  error: {job.error}")
    for row in errors:
        out.print(f"  {row['video']}  {row['question']!r}: {row['error']['type']}: {row['error']['message']}")


@jobs_app.command("cancel")
def jobs_cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="a job id (`heron jobs ls`)")],
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """Stop a running job after the videos in flight; what is committed stays (rerun to resume)."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    jobs, _ = _stores(redis_url)
    job = _job(jobs, job_id)
    if not job.finished:
        job = jobs.update_job(job_id, status="cancelled")
    if out.json:
        out.emit_json(_shown(job))
    else:
        out.print(f"{job_id}: {job.status}")


@jobs_app.command("rm")
def jobs_rm(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="a job id (`heron jobs ls`)")],
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """Forget a job and its results (cached windows stay: `heron cache` manages those)."""
    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    jobs, results = _stores(redis_url)
    job = _job(jobs, job_id)
    if job.status == "running" and time.time() - job.updated_at < STALE_S:
        from heron.errors import ConfigError

        raise ConfigError(f"job {job_id} is running; `heron jobs cancel {job_id}` it first")
    results.forget(job_id)
    jobs.delete_job(job_id)
    if out.json:
        out.emit_json({"id": job_id, "removed": True})
    else:
        out.print(f"{job_id}: removed")


def _stores(redis_url: str | None):
    from heron.state import JobStore, RedisConnection, ResultStore, ensure_redis

    db = RedisConnection(ensure_redis(redis_url))
    return JobStore(db), ResultStore(db)


def _job(jobs, job_id: str):
    from heron.errors import JobNotFoundError

    job = jobs.get_job(job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} (`heron jobs ls` lists them)")
    return job


def _status(job) -> str:
    """The status, with "stale" for a running job whose process stopped beating (killed)."""
    if job.status == "running" and time.time() - job.updated_at > STALE_S:
        return "running?  (no heartbeat: its process stopped; rerun the command to resume)"
    return job.status


def _shown(job) -> dict:
    return {**job.to_dict(), "stale": job.status == "running" and time.time() - job.updated_at > STALE_S}


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
