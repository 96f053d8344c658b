"""ResultStore on a real Redis: a result is committed once, however many writers race for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from heron.state import JobStore, ResultStore


def test_a_result_is_written_once_and_counted_once(db):
    jobs, results = JobStore(db), ResultStore(db)
    jobs.create_job("batch", job_id="j1")
    jobs.update_job("j1", counters={"pending": 3})
    assert results.commit("j1", "k1", {"index": 1, "answer": "red"}, failed=False)
    assert not results.commit("j1", "k1", {"index": 1, "answer": "blue"}, failed=False)  # the first stays
    assert results.commit("j1", "k0", {"index": 0, "answer": None, "error": {"type": "X"}}, failed=True)
    assert results.committed("j1") == {"k1": False, "k0": True}
    assert [r["index"] for r in results.rows("j1")] == [0, 1]
    assert results.rows("j1", ["k1", "missing"]) == [{"index": 1, "answer": "red"}]
    assert jobs.get_job("j1").counters == {"pending": 1, "done": 1, "failed": 1}
    results.forget("j1")
    assert results.committed("j1") == {}


def test_racing_writers_commit_each_key_exactly_once(db):
    jobs, results = JobStore(db), ResultStore(db)
    jobs.create_job("batch", job_id="race")

    def write(writer: int) -> int:
        return sum(results.commit("race", f"k{k}", {"index": k, "by": writer}, failed=False) for k in range(50))

    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(write, range(4)))
    assert sum(written) == 50
    assert len(results.rows("race")) == 50
    assert jobs.get_job("race").counters["done"] == 50
