"""Redis failing under Heron: SIGKILLed mid-ingest and restarted, down while questions are asked,
out of disk space. Real servers (``RedisProcess``: append-only file, ``appendfsync everysec``),
real Ray actors, the demo model.

What must hold: an ingest either finishes or fails with a typed error and its rerun finishes; in
the end every window is stored once, bit for bit as in an undisturbed run, and the answer is the
undisturbed one; no write acknowledged more than ``EVERYSEC_S`` before a kill is lost; while Redis is down every call
fails within seconds with ``StateUnavailableError`` (HTTP 503) and succeeds once it is back; a
full disk refuses writes with an error that says so, and nothing written before is lost.
Each test prints its figures (``-s`` shows them; docs/state.md quotes them).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis

from heron.config import load_pipeline_config
from heron.data.scenes import appearing_square_frames
from heron.data.video_writer import write_video
from heron.errors import HeronError, StateUnavailableError
from heron.pipeline.answer import AnswerRequest
from heron.service import Heron
from heron.state import DialogueStore, JobStore, LatentStore, RedisConnection
from heron.state.connection import RETRY_WINDOW_S
from heron.types import MediaChunk

from .redis_process import RedisProcess

pytestmark = [pytest.mark.integration]

QUESTION = "What color is the square?"
SECONDS = 24.0  # twelve 2-s windows: an ingest of ~6 s on 2 cores, long enough to kill Redis in
DOWN_S = 1.0  # how long a "restart" keeps Redis away: a container or service restart
# appendfsync everysec: a server with a slow background fsync postpones AOF writes up to 2 s (and
# goes on replying), so writes acknowledged that recently before a kill may be lost (plus slack)
EVERYSEC_S = 2.5
FAIL_FAST_S = RETRY_WINDOW_S + 3.0  # the retry window, one last attempt and slack for a busy machine


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)


def stored_windows(probe: redis.Redis, key: str) -> set[int]:
    """Windows in the time index now, read by a client without retries (none while Redis is away)."""
    try:
        return {int(member) for member in probe.zrange(key, 0, -1)}
    except redis.RedisError:
        return set()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with RedisProcess(tmp_path_factory.mktemp("redis-aof")) as process:
        yield process


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    frames = appearing_square_frames(SECONDS, [(4.0, 16.0)])
    return str(write_video(tmp_path_factory.mktemp("video") / "square.mp4", frames, fps=8, gop=8))


@pytest.fixture(scope="module")
def heron(ray_session, server):
    cfg = load_pipeline_config("demo")
    cfg.ingest = dataclasses.replace(cfg.ingest, windows_per_call=1)  # one write per window: many to kill between
    namespace = f"heron-redis-faults-{time.monotonic_ns()}"
    with Heron(cfg, redis_url=server.url, progress=False, namespace=namespace) as service:
        service.warm_up()
        yield service
        service.db.clear_all()


@pytest.fixture(scope="module")
def undisturbed(heron, video):
    """The run nothing happened to: its source id, every window's latents, its answer."""
    report = heron.ingest(video)
    answer = heron.ask(video, QUESTION).answer
    indices = sorted(heron.latents.cached_indices(report.source_id))
    latents = {c.index: c.latents for c in heron.latents.get_chunks(report.source_id, indices)}
    assert len(latents) == report.windows_encoded == int(SECONDS / 2)
    return report.source_id, latents, (answer.text, answer.spans)


def assert_as_undisturbed(heron: Heron, video: str, undisturbed) -> None:
    source_id, latents, answer = undisturbed
    info = heron.latents.source_info(source_id)
    assert info.complete and info.n_windows == info.cached_windows == len(latents)
    assert heron.latents.cached_indices(source_id) == set(latents)  # each window once (a sorted set)
    for chunk in heron.latents.get_chunks(source_id, sorted(latents)):
        np.testing.assert_array_equal(chunk.latents, latents[chunk.index])
    result = heron.ask(video, QUESTION)
    assert result.ingest.cached and (result.answer.text, result.answer.spans) == answer


def ingest_in_background(heron: Heron, video: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["report"] = heron.ingest(video)
        except BaseException as error:  # the test judges it
            outcome["error"], outcome["at"] = error, time.monotonic()

    thread = threading.Thread(target=run, name="ingest", daemon=True)
    thread.start()
    return thread, outcome


def test_sigkill_mid_ingest_with_a_restart_loses_no_window_and_answers_as_undisturbed(
    heron, server, video, undisturbed
):
    source_id = undisturbed[0]
    heron.latents.clear_source(source_id)
    probe = redis.Redis.from_url(server.url, socket_timeout=1, retry=None)
    times = heron.latents._key(source_id, "times")
    first_seen: dict[int, float] = {}  # window -> when the probe first saw it stored (it was acknowledged by then)

    def stored() -> set[int]:
        now, found = time.monotonic(), stored_windows(probe, times)
        for window in found:
            first_seen.setdefault(window, now)
        return found

    thread, outcome = ingest_in_background(heron, video)
    faults, ages = [], []
    for after in (2, 6, 9):  # windows stored before each kill
        wait_for(lambda n=after: len(stored()) >= n or not thread.is_alive(), 60, "windows")
        if not thread.is_alive():
            break
        acknowledged, killed_at = stored(), time.monotonic()
        server.kill()
        time.sleep(DOWN_S)
        server.start()
        missing = acknowledged - stored_windows(probe, times)
        ages += [killed_at - first_seen[w] for w in missing]
        faults.append((len(acknowledged), len(missing)))
    thread.join(timeout=90)
    assert not thread.is_alive(), "the ingest hangs"
    assert len(faults) >= 2, "the ingest finished before Redis could be killed twice"
    reran = "error" in outcome
    if reran:  # allowed: a typed error, and then the same ingest finishes
        assert isinstance(outcome["error"], HeronError), outcome["error"]
        heron.ingest(video)
    lost = sum(missing for _, missing in faults)
    print(
        f"\nkilled mid-ingest {len(faults)}x, {DOWN_S:g} s down each; (windows stored, lost) at each: {faults}; "
        f"lost {lost}; ingest {'failed, rerun finished' if reran else 'rode over it'}"
    )
    # Redis's own bar (as in test_sigkill_loses_no_acknowledged_write); Heron notices such a loss
    # (the ingest fails typed instead of marking the source complete) and the rerun heals it
    assert all(age <= EVERYSEC_S for age in ages), f"lost windows stored {max(ages):.2f} s before a kill"
    assert_as_undisturbed(heron, video, undisturbed)


def test_redis_down_longer_than_the_retry_window_fails_the_ingest_typed_and_its_rerun_finishes(
    heron, server, video, undisturbed
):
    source_id = undisturbed[0]
    heron.latents.clear_source(source_id)
    probe = redis.Redis.from_url(server.url, socket_timeout=1, retry=None)
    thread, outcome = ingest_in_background(heron, video)
    wait_for(lambda: len(stored_windows(probe, heron.latents._key(source_id, "times"))) >= 3, 60, "windows")
    server.kill()
    killed = time.monotonic()
    try:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the ingest hangs while Redis is down"
    finally:
        server.start()
    error = outcome.get("error")
    assert isinstance(error, StateUnavailableError), outcome
    assert str(error).count("\n") == 0 and server.url.split("//")[1].split("/")[0] in str(error)
    print(f"\ningest failed {outcome['at'] - killed:.1f} s after the kill: {error}")
    assert outcome["at"] - killed < FAIL_FAST_S + 10  # the encode call in flight, then the retry window
    heron.ingest(video)
    assert_as_undisturbed(heron, video, undisturbed)


def test_while_redis_is_down_questions_fail_fast_with_a_typed_error_and_succeed_once_it_is_back(
    heron, server, video, undisturbed
):
    from heron.api.errors import status_of

    heron.ingest(video)  # cached (after the other tests) or ingested now
    db = heron.db
    calls = {
        "ask": lambda: heron.ask(video, QUESTION),
        "answer (the actor reads)": lambda: heron.answer(AnswerRequest.about(QUESTION, undisturbed[0])),
        "source_info": lambda: heron.latents.source_info(undisturbed[0]),
        "chunks_in_range": lambda: heron.latents.chunks_in_range(undisturbed[0], 0.0, 4.0),
        "get_dialogue": lambda: DialogueStore(db).get_dialogue("s"),
        "append_turn": lambda: DialogueStore(db).append_turn("s", "user", "hi"),
        "create_job": lambda: JobStore(db).create_job("ask"),
    }

    def timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
        started = time.monotonic()
        try:
            outcome = call()
        except BaseException as error:  # the test judges it
            return time.monotonic() - started, error
        return time.monotonic() - started, AssertionError(f"no error but {outcome!r}")

    server.kill()
    try:
        with ThreadPoolExecutor(len(calls)) as pool:  # at once: each waits out its own retry window
            outcomes = dict(zip(calls, pool.map(timed, calls.values(), timeout=60)))
        healthy = timed(lambda: heron.healthy()["redis"] or None)
    finally:
        server.start()
    for name, (_, error) in outcomes.items():
        assert isinstance(error, StateUnavailableError) and "not answering" in str(error), (name, error)
        assert status_of(error) == 503
    took = {name: seconds for name, (seconds, _) in outcomes.items()} | {"healthy": healthy[0]}
    back = time.monotonic()
    result = heron.ask(video, QUESTION)
    recovered = time.monotonic() - back
    print(
        f"\nwhile down, seconds to fail: { ({k: round(v, 2) for k, v in took.items()}) }; "
        f"first question after the restart answered in {recovered:.2f} s"
    )
    assert max(took.values()) < FAIL_FAST_S, took
    assert min(took.values()) > RETRY_WINDOW_S / 3  # it did retry (a restart would have been ridden over)
    assert (result.answer.text, result.answer.spans) == undisturbed[2]


def test_sigkill_loses_no_acknowledged_write(server):
    """Writes acknowledged before a SIGKILL are there after the restart: the AOF gets each write
    before its reply, except that with ``appendfsync everysec`` a server whose background fsync is
    slow (a loaded disk) postpones its AOF writes for up to 2 s while it goes on replying. So the
    bar is Redis's own: nothing acknowledged more than ``EVERYSEC_S`` before the kill is lost (on
    an idle machine nothing at all: 0 in every run measured; under heavy load a couple)."""
    store = LatentStore(RedisConnection(server.url, namespace=f"heron-acks-{time.monotonic_ns()}"), {"m": "acks"})
    acked: list[int] = []
    acked_at: dict[int, float] = {}
    slowest = [0.0]
    stop = threading.Event()

    def write() -> None:
        index = 0
        while not stop.is_set():
            started = time.monotonic()
            latents = np.full((4, 8), index % 1000, dtype=np.float32)
            store.put_chunk(MediaChunk(source_id="acks", index=index, t_start=index, t_end=index + 1, latents=latents))
            acked_at[index] = time.monotonic()
            acked.append(index)
            slowest[0] = max(slowest[0], time.monotonic() - started)
            index += 1

    writer = threading.Thread(target=write, name="writer", daemon=True)
    writer.start()
    kills, lost, late = 5, set(), []
    try:
        for _ in range(kills):
            target = len(acked) + 50
            wait_for(lambda n=target: len(acked) >= n or not writer.is_alive(), 30, "writes")
            server.kill()
            killed_at, at_kill = time.monotonic(), list(acked)
            time.sleep(DOWN_S)
            server.start()
            missing = set(at_kill) - store.cached_indices("acks") - lost
            late += [killed_at - acked_at[i] for i in missing]
            lost |= missing
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive()  # the writer never failed
    assert all(age <= EVERYSEC_S for age in late), f"lost writes acknowledged {max(late):.2f} s before a kill"
    assert store.cached_indices("acks") == set(acked) - lost
    print(
        f"\n{kills} SIGKILLs ({DOWN_S:g} s down each) during {len(acked)} acknowledged writes: lost {len(lost)}; "
        f"slowest write {slowest[0]:.2f} s (it waited out the restart)"
    )
    store.db.clear_all()


def test_a_full_disk_refuses_writes_saying_so_and_loses_nothing_written_before(tmp_path):
    with RedisProcess(tmp_path / "redis", file_size_limit=1 << 20) as server:
        db = RedisConnection(server.url, namespace="heron-disk-full")
        store = LatentStore(db, {"m": "disk"})
        big = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)  # 128 KiB as fp16

        def chunk(index: int) -> MediaChunk:
            return MediaChunk(source_id="v", index=index, t_start=index, t_end=index + 1, latents=big + index)

        acked = []
        with pytest.raises(StateUnavailableError) as caught:
            for index in range(64):  # 8 MiB: well past the 1 MiB the AOF may grow to
                store.put_chunk(chunk(index))
                acked.append(index)
        # The write that met the full disk may be stored or not (its transaction can pass while the
        # index update after it is refused); every acknowledged one is.
        acked = sorted(store.cached_indices("v"))
        assert set(acked) - set(range(len(acked) + 1)) == set() and len(acked) >= 4
        message = str(caught.value)
        print(f"\ndisk full after {len(acked)} windows: {message}")
        assert "cannot write its data to disk" in message and "No space left on device" in message
        assert "\n" not in message and len(message) < 400
        with pytest.raises(StateUnavailableError, match="cannot write its data to disk"):
            DialogueStore(db).append_turn("s", "user", "hi")
        with pytest.raises(StateUnavailableError, match="cannot write its data to disk"):
            JobStore(db).create_job("ask")  # a Lua script
        assert store.cached_indices("v") == set(acked) and store.get_chunk("v", 0) is not None  # reads go on

        server.set_file_size_limit(None)  # space returns; the server retries its AOF write every second
        returned = time.monotonic()
        wait_for(lambda: _writes(store, chunk(len(acked))), 10, "writes after space returned")
        print(f"writes accepted again {time.monotonic() - returned:.2f} s after space returned")
        acked.append(len(acked))

        def check() -> None:
            assert store.cached_indices("v") == set(acked)
            for stored in store.get_chunks("v", acked):
                np.testing.assert_array_equal(stored.latents, (big + stored.index).astype(np.float16))

        check()
        server.kill()  # the AOF alone must now hold all of it
        server.start()
        check()


def _writes(store: LatentStore, chunk: MediaChunk) -> bool:
    try:
        store.put_chunk(chunk)
        return True
    except StateUnavailableError:
        return False
