"""The thread count each process uses: decided from the flag, the launcher's OMP_NUM_THREADS, else 1."""

from __future__ import annotations

import pytest

from lstm_trainer.errors import UserError
from lstm_trainer.threads import decide


@pytest.mark.parametrize(
    ("flag", "env", "count", "origin", "policy"),
    [
        (None, {}, 1, "default", None),  # plain `python train.py`: one thread, no spinning partner
        (None, {"OMP_NUM_THREADS": "1"}, 1, "OMP_NUM_THREADS=1", None),  # what accelerate launch exports by default
        (None, {"OMP_NUM_THREADS": "2"}, 2, "OMP_NUM_THREADS=2", "PASSIVE"),  # --num_cpu_threads_per_process 2
        (2, {"OMP_NUM_THREADS": "1"}, 2, "--num_threads 2", "PASSIVE"),  # the flag wins
        (2, {"OMP_WAIT_POLICY": "ACTIVE"}, 2, "--num_threads 2", None),  # a policy the user chose stays
    ],
)
def test_decide(flag: int | None, env: dict[str, str], count: int, origin: str, policy: str | None) -> None:
    threads = decide(flag, env)
    assert (threads.count, threads.origin, threads.wait_policy) == (count, origin, policy)
    line = threads.describe()
    assert line.startswith(f"threads {count} per process ({origin})")
    assert ("wait policy PASSIVE" in line) == (policy == "PASSIVE")


def test_a_bad_omp_num_threads_is_one_line() -> None:
    with pytest.raises(UserError, match="OMP_NUM_THREADS='two' is not a thread count"):
        decide(None, {"OMP_NUM_THREADS": "two"})
