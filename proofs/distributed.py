"""Run claims on Dask: an embedded local cluster (``--workers N``) or a running one (``--scheduler ADDRESS``).

The tasks are independent: a claim (``verify``, ``report``) or one claim at one master seed (``audit``).
Every draw of a claim is seeded from the master seed and the claim's own coordinates, never from the
execution order, so a distributed run gives the serial run's verdicts and numbers (up to float64
rounding of BLAS thread counts).  Results are gathered and put back in the serial order; the progress
callback sees them as they complete (:func:`distributed.as_completed`).

* ``--workers N`` (N > 1) starts a :class:`distributed.LocalCluster` of N processes on 127.0.0.1, one
  thread each, no memory limit (as in a serial run); each task runs with one BLAS thread (threadpoolctl, and ``OMP_NUM_THREADS`` etc. set
  before the worker starts) so that N workers do not oversubscribe the cores.
* ``--scheduler ADDRESS`` connects to a running cluster (``dask scheduler`` and ``dask worker
  ADDRESS --nthreads 1``); an address that cannot be reached within :data:`CONNECT_TIMEOUT` seconds, or
  a scheduler without workers, is a :class:`SchedulerUnavailable` naming ``--scheduler``, the address
  and the cause.
* A worker lost mid-task (killed, out of memory) is replaced (local cluster) and the task is rerun
  elsewhere by the scheduler, up to ``distributed.scheduler.allowed-failures`` times; a task that
  raises is retried :data:`RETRIES` time(s) (``retries=``).  A task that still fails stops the run:
  the remaining tasks are cancelled and :class:`TaskFailed` names the task (claim id, seed) and the cause.

**Sweep points as tasks.**  The ``(width, initialisation)`` points of a width sweep
(:func:`proofs.adaptive.adaptive_sweep`, hence :func:`proofs.evidence.training_sweep` and
:func:`proofs.evidence.isotropy_sweep`) are tasks too, whenever a :class:`PointExecutor` is active in
the running context (a :class:`contextvars.ContextVar`, :func:`active_point_executor`):

* in a claim task on a worker (every task :func:`run_tasks` starts), each round of a sweep first
  asks the scheduler whether other claims wait for a worker thread (:func:`_claims_waiting`).  If
  they do, the cluster is already busy with whole claims and the round runs inside the claim task,
  one point after the other, as before points were tasks (seceding would start a waiting claim in the
  freed slot: measured, that nearly doubled a quick run of all claims, see :func:`_claims_waiting`).
  If none wait -- the tail of a run, fewer claims than threads -- the points of the round are
  submitted from the task through the worker's client ("tasks launching tasks"): the task
  submits the round, then *secedes* from the worker's thread pool while it waits (so its slot runs
  points, here or elsewhere: no deadlock however many claims wait at once), and *rejoins* when the
  round is in -- :func:`distributed.worker_client` does the same, but secedes *before* the points are
  submitted, which lets a queued claim take the freed slot first.  Point tasks have priority
  :data:`POINT_PRIORITY` (plus their width's rank: widest first) over claim tasks, so a freed slot
  goes to the points of a running claim, not to the next claim (which would hold a second claim's
  memory on the worker and delay the rejoin).  A point task itself runs its point serially (no tasks
  from tasks from tasks);
* in the main process, ``with point_executor(client, task)`` submits points to ``client``;
  :func:`run_claims_on` does this for a run of ONE claim (``ngd-verify verify CLAIM --workers 2``): the
  claim runs in this process (as in a serial run, with the progress line when one is open) and only
  its sweep points are tasks;
* with no executor (a serial run) nothing changes and nothing of Dask is imported;
* ``NGD_VERIFY_POINT_TASKS=0`` in the environment (of the command and of external workers) keeps the
  points inside their claim: the unit of work is a claim again (:func:`point_tasks_enabled`).

Each point task runs ``measure(width, rep)`` with one BLAS thread; every point is seeded from its
coordinates (the measure closures use ``cfg.sub_seed(claim key, width, rep)``), results are put back
in point order, so a sweep gives the serial numbers.  A measure whose pickle exceeds
:data:`SCATTER_BYTES` (captured arrays) is scattered once per round and the tasks take its future; one
that cannot be pickled runs its round serially where the sweep runs.  A point that fails for good
raises :class:`PointFailed` naming the task (claim id, seed) and the point (width, rep).  When
``measure`` itself raised, :meth:`proofs.claim.Claim.run` turns that into an ``inconclusive`` verdict
whose notes carry the name (as it does for any exception of a check; a serial run says the same
without the point).  When the cluster lost the point (a worker killed too often: ``KilledWorker``;
cancelled), the PointFailed is raised again when the claim returns, so the run stops as for a claim
task that fails for good (``TaskFailed``, exit 3), naming claim, seed, width and rep; Dask blames every
task that was on a dying worker, so the point named may be one that shared the worker with the culprit.

Dask is imported only here, and only when a distributed run is asked for: the serial path needs none of
it.  Without it, :func:`require_distributed` raises :class:`DistributedUnavailable` with the install line.

>>> Execution().describe()
{'kind': 'serial'}
>>> Execution(workers=2).describe()["kind"]
'local cluster'
>>> Execution(workers=1).distributed, Execution(scheduler="tcp://127.0.0.1:8786").distributed
(False, True)
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["Execution", "DistributedUnavailable", "SchedulerUnavailable", "TaskFailed", "PointFailed",
           "require_distributed", "run_tasks", "run_claims_on", "json_differences", "claim_ref", "resolve_claim",
           "missing_message", "PointExecutor", "PointRound", "point_executor", "active_point_executor", "RETRIES",
           "CONNECT_TIMEOUT", "BLAS_ENV", "POINT_PRIORITY", "SCATTER_BYTES", "POINT_TASKS_ENV", "point_tasks_enabled"]

#: retries of a task that raised (a lost worker is rescheduled by the scheduler on its own account)
RETRIES = 1
#: seconds to reach a ``--scheduler`` and to see its first worker
CONNECT_TIMEOUT = 10.0
#: Dask priority of a sweep-point task (claim tasks have 0; higher runs first)
POINT_PRIORITY = 10
#: a measure closure whose pickle is larger (bytes) is scattered once per round instead of shipped per task
SCATTER_BYTES = 1 << 20
#: set in each local worker process before numpy loads: one BLAS/OpenMP thread per worker
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "BLIS_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}


class DistributedUnavailable(ImportError):
    """``--workers N`` / ``--scheduler`` without the ``[distributed]`` extra installed."""


class SchedulerUnavailable(ConnectionError):
    """``--scheduler ADDRESS`` that cannot be reached, or that has no workers."""


class TaskFailed(RuntimeError):
    """A task failed for good (it raised after its retries, or its workers were lost too often)."""

    def __init__(self, task: str, cause: BaseException, done: int = 0, total: int = 0):
        self.task = task
        self.cause = cause
        what = f"{type(cause).__name__}: {' '.join(str(cause).split())}"[:400]
        super().__init__(f"task {task} failed: {what}; the run was stopped "
                         f"({done} of {total} tasks had finished; their results were discarded)")


class PointFailed(TaskFailed):
    """A sweep point failed for good: ``task`` names the claim task it belongs to (``"<claim id> at seed
    <seed>"``, or what :func:`point_executor` was given), ``width`` and ``rep`` the point, ``cause`` the
    exception (raised ``from`` it).  The rest of the round was cancelled."""

    def __init__(self, task: str, width: int, rep: int, cause: BaseException, done: int = 0, total: int = 0):
        self.width, self.rep = int(width), int(rep)
        point = f"sweep point (width {self.width}, rep {self.rep})"
        self.point = f"{point} of {task}" if task else point
        RuntimeError.__init__(self, f"{self.point} failed: {_cause(cause)}; the sweep was stopped "
                                    f"({done} of {total} points of its round had finished)")
        self.task = task
        self.cause = cause


def missing_message(option: str) -> str:
    return f"{option} needs the [distributed] extra: pip install 'ngd-verifier[distributed]'"


def require_distributed(option: str = "--workers 2"):
    """``distributed``, imported; :class:`DistributedUnavailable` with the install line when it is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise DistributedUnavailable(missing_message(option)) from None
    return distributed


@dataclass
class Execution:
    """Where tasks run: serially (``workers == 1`` and no scheduler), on an embedded local cluster of
    ``workers`` processes, or on the cluster behind ``scheduler``.  ``record`` collects what the run
    learnt (workers seen, their peak memory) for the JSON's ``environment.execution``."""

    workers: int = 1
    scheduler: Optional[str] = None
    record: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.workers, bool) or int(self.workers) < 1:
            raise ValueError(f"workers={self.workers!r} is not allowed: expected an integer >= 1")
        self.workers = int(self.workers)
        if self.scheduler is not None and self.workers > 1:
            raise ValueError("workers and scheduler are mutually exclusive")

    @property
    def distributed(self) -> bool:
        return self.scheduler is not None or self.workers > 1

    @property
    def option(self) -> str:
        """The command-line option that asked for this execution (for messages)."""
        return f"--scheduler {self.scheduler}" if self.scheduler is not None else f"--workers {self.workers}"

    def describe(self) -> Dict[str, Any]:
        if self.scheduler is not None:
            base = {"kind": "scheduler", "address": self.scheduler}
        elif self.workers > 1:
            base = {"kind": "local cluster", "workers": self.workers, "processes": True, "threads_per_worker": 1,
                    "blas_threads_per_worker": 1}
        else:
            return {"kind": "serial"}
        return {**base, **self.record}


# ----------------------------------------------------------------------------- worker side
def _peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux: ru_maxrss is in KiB)."""
    import resource
    import sys
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _one_blas_thread(fn: Callable, *args):
    """``fn(*args)`` with BLAS/OpenMP pinned to one thread in this worker."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover -- threadpoolctl is a declared dependency
        return fn(*args)
    with threadpool_limits(1):
        return fn(*args)


def _run_task(label: str, fn: Callable, *args):
    """Worker entry point of every task of :func:`run_tasks`: ``fn(*args)`` with one BLAS thread, the
    sweeps inside submitting their points as tasks from this task (a nested :class:`PointExecutor`
    named ``label``, e.g. ``"ngd.exact.one_step at seed 3"``)."""
    points = PointExecutor(task=label, nested=True) if point_tasks_enabled() else None
    token = _POINTS.set(points)
    try:
        result = _one_blas_thread(fn, *args)
    finally:
        _POINTS.reset(token)
    if points is not None and points.lost is not None:  # a point lost its workers for good: the task fails
        raise points.lost
    return result


def _run_point(measure: Callable, width: int, rep: int):
    """Worker entry point of a sweep point: ``measure(width, rep)`` with one BLAS thread, serially (a
    sweep inside a point does not launch tasks of its own)."""
    token = _POINTS.set(None)
    try:
        return _one_blas_thread(measure, width, rep)
    finally:
        _POINTS.reset(token)


# ----------------------------------------------------------------------------- client side
def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]


def _probe_scheduler(address: str) -> None:
    """Fail fast, with the operating system's reason (connection refused, unknown host, timeout), when
    ``address`` does not answer as a Dask scheduler; a Client would retry until its timeout and say
    only that it timed out (and leave a half-built client whose finaliser waits another 20 s)."""
    import asyncio
    import socket

    from distributed.comm import connect, parse_address
    from distributed.comm.addressing import parse_host_port

    what = f"--scheduler {address!r}"
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                pass
    except socket.timeout:
        raise SchedulerUnavailable(f"{what}: cannot connect (no answer within {CONNECT_TIMEOUT:.0f} s)") from None
    except OSError as exc:
        raise SchedulerUnavailable(f"{what}: cannot connect ({exc.strerror or _cause(exc)})") from None
    except Exception as exc:  # noqa: BLE001 -- a malformed address
        raise SchedulerUnavailable(f"{what}: not an address such as tcp://127.0.0.1:8786 ({_cause(exc)})") from None

    async def identity():
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        try:
            await asyncio.wait_for(comm.write({"op": "identity"}), CONNECT_TIMEOUT)
            return await asyncio.wait_for(comm.read(), CONNECT_TIMEOUT)
        finally:
            comm.abort()

    try:
        reply = asyncio.run(identity())
    except Exception as exc:  # noqa: BLE001 -- something answers, but not a Dask scheduler
        cause = (_cause(exc) if isinstance(exc, (OSError, TimeoutError)) and not isinstance(exc, MemoryError)
                 else "the reply is not Dask's protocol")
        raise SchedulerUnavailable(f"{what}: no Dask scheduler answers there ({cause})") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise SchedulerUnavailable(f"{what}: the server there is not a Dask scheduler (it says {kind!r})")


@contextlib.contextmanager
def _client(execution: Execution) -> Iterator[Any]:
    distributed = require_distributed(execution.option)
    if execution.scheduler is not None:
        address = execution.scheduler
        _probe_scheduler(address)
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 -- whatever the cause, it is the address's
            raise SchedulerUnavailable(f"--scheduler {address!r}: cannot connect ({_cause(exc)})") from None
        try:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except (TimeoutError, OSError) as exc:
                raise SchedulerUnavailable(f"--scheduler {address!r}: the scheduler has no workers after "
                                           f"{CONNECT_TIMEOUT:.0f} s (start some with `dask worker {address} "
                                           "--nthreads 1`)") from None
            execution.record["workers"] = len(client.scheduler_info().get("workers", {}))
            yield client
        finally:
            client.close()
        return
    from distributed import LocalCluster

    # memory_limit=0: no nanny kill at a fraction of the RAM -- a claim may use what the serial run may
    # (the --full sweeps at width 16384 hold several 2 GB matrices); the peak per worker is recorded
    cluster = LocalCluster(n_workers=execution.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.CRITICAL, env=dict(BLAS_ENV), memory_limit=0)
    try:
        client = distributed.Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def run_tasks(execution: Execution, fn: Callable, tasks: Sequence[Tuple[str, tuple]],
              on_result: Optional[Callable[[int, Any], None]] = None) -> List[Any]:
    """Run ``fn(*args)`` for every ``(label, args)`` of ``tasks`` on the cluster of ``execution`` (one
    BLAS thread per task; the sweeps inside a task submit their points as tasks, :func:`_run_task`);
    return the results in the order of ``tasks``.  ``on_result(index, result)``
    is called as each task completes (completion order).  A failed task cancels the rest and raises
    :class:`TaskFailed` naming its label.  Peak memory per worker is put in ``execution.record``."""
    tasks = list(tasks)
    results: List[Any] = [None] * len(tasks)
    if not tasks:
        return results
    with _client(execution) as client:
        token = uuid.uuid4().hex[:8]
        futures = [client.submit(_run_task, label, fn, *args, key=f"ngd-{token}-{i}-{label}", pure=False,
                                 retries=RETRIES) for i, (label, args) in enumerate(tasks)]
        done = 0
        try:
            for i, future, exc in _completed(client, futures):
                if exc is not None:
                    raise TaskFailed(tasks[i][0], exc, done, len(tasks))
                results[i] = future.result()
                done += 1
                if on_result is not None:
                    on_result(i, results[i])
        except BaseException:
            client.cancel(futures)
            raise
        _record_peaks(execution, client)
    return results


def _completed(client, futures) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
    """``(index in futures, future, its exception or None)`` in completion order (claim tasks and
    sweep points alike; the callers decide what a failure means)."""
    from distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures, loop=client.loop):
        yield index[future.key], future, _outcome(future)


def _record_peaks(execution: Execution, client) -> None:
    """Peak memory per worker into ``execution.record`` (never fails the run: a record, not a result)."""
    try:
        peaks = client.run(_peak_rss_mb)
        execution.record["peak_rss_mb_per_worker"] = {str(k): v for k, v in sorted(peaks.items())}
        execution.record.setdefault("workers", len(peaks))
    except Exception:  # noqa: BLE001
        pass


# ----------------------------------------------------------------------------- claims as tasks
def claim_ref(claim) -> Any:
    """What a task carries to name its claim: the id of a registered claim (the worker imports the
    registry once), else the :class:`~proofs.claim.Claim` object itself (pickled)."""
    from proofs.claim import REGISTRY

    return claim.id if REGISTRY.get(claim.id) is claim else claim


def resolve_claim(ref):
    """The claim a task names (worker side): a Claim, or a registered id looked up in the registry."""
    if not isinstance(ref, str):
        return ref
    from proofs.registry import get_claim

    return get_claim(ref)


def run_claim(ref, mode: str, seed: int):
    """One claim at one master seed (worker entry point of ``verify``/``report``): its ClaimResult."""
    from proofs.claim import RunConfig

    return resolve_claim(ref).run(RunConfig(mode=mode, seed=int(seed)))


def run_claims_on(execution: Execution, claims: Sequence, mode: str, seed: int,
                  on_result: Optional[Callable[[int, Any], None]] = None, cfg=None) -> List[Any]:
    """The ClaimResult of every claim in ``claims`` (in their order), one task per claim (the sweep
    points inside each claim are tasks too, launched from the claim's task).

    ONE claim runs in this process instead, as in a serial run, with only its sweep points as tasks
    (:func:`point_executor`): nothing else would keep the second worker busy, the claim's own work
    keeps the process's BLAS threads, and its sweeps report each point on the progress line.  ``cfg``
    (a :class:`proofs.claim.RunConfig`) is the run configuration for that case; by default mode and
    seed with progress on when a :func:`proofs.progress.status_line` is open in this process (it is
    only opened when the caller's configuration asks for progress)."""
    claims = list(claims)
    if len(claims) == 1 and point_tasks_enabled():
        return [_run_claim_here(execution, claims[0], mode, seed, on_result, cfg)]
    tasks = [(f"{c.id} at seed {seed}", (claim_ref(c), mode, int(seed))) for c in claims]
    return run_tasks(execution, run_claim, tasks, on_result)


def _run_claim_here(execution: Execution, claim, mode: str, seed: int,
                    on_result: Optional[Callable[[int, Any], None]], cfg) -> Any:
    """One claim in this process with its sweep points as tasks on the cluster of ``execution``."""
    from proofs.claim import RunConfig
    from proofs import progress as _progress

    if cfg is None:
        cfg = RunConfig(mode=mode, seed=int(seed), progress=bool(_progress._LINES))
    if cfg.progress and _progress._LINES:  # the line names the claim running, as in a serial run
        _progress._LINES[-1].item(claim.id)
    with _client(execution) as client:
        with point_executor(client, f"{claim.id} at seed {int(seed)}") as points:
            result = claim.run(cfg)
        if points.lost is not None:  # the run stops, as for a claim task that failed for good
            raise points.lost
        _record_peaks(execution, client)
    if on_result is not None:
        on_result(0, result)
    return result


# ----------------------------------------------------------------------------- sweep points as tasks
_POINTS: "contextvars.ContextVar[Optional[PointExecutor]]" = contextvars.ContextVar("ngd_point_executor",
                                                                                     default=None)


#: environment variable: ``0`` keeps every sweep's points inside its claim (the unit of work is a claim,
#: as before sweep points were tasks); read where the claim runs (main process, worker)
POINT_TASKS_ENV = "NGD_VERIFY_POINT_TASKS"


def point_tasks_enabled() -> bool:
    """Whether sweep points become tasks in a distributed run (``NGD_VERIFY_POINT_TASKS`` is not ``0``)."""
    return os.environ.get(POINT_TASKS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def active_point_executor() -> Optional["PointExecutor"]:
    """The :class:`PointExecutor` of the running context, ``None`` in a serial run (and in a point)."""
    return _POINTS.get()


@contextlib.contextmanager
def point_executor(client, task: str = "") -> Iterator["PointExecutor"]:
    """While the block runs, the sweeps of this context submit their points to ``client`` (a
    :class:`distributed.Client`), as tasks named after ``task`` (e.g. ``"ngd.exact.one_step at seed
    3"``; it names a failed point).  Results are the serial ones (module docstring).

    >>> with point_executor(client, "my sweep"):                # doctest: +SKIP
    ...     run = adaptive_sweep(measure, widths, specs, budget)  # its points run on the cluster
    """
    executor = PointExecutor(client=client, task=task)
    token = _POINTS.set(executor)
    try:
        yield executor
    finally:
        _POINTS.reset(token)


class PointExecutor:
    """Runs the points of a sweep round as Dask tasks: on ``client`` (main process), or, with
    ``nested=True`` inside a task on a worker, on the worker's own client while the task is seceded
    (module docstring).  ``task`` names the points' claim task in errors and task keys.

    ``points_submitted`` counts the points run as tasks; ``rounds_serial`` the rounds that ran
    serially because their measure could not be pickled, ``rounds_busy`` those that ran in their
    claim task because other claims were waiting for a worker (:func:`_claims_waiting`); ``lost`` is the first :class:`PointFailed`
    whose cause is the cluster's (a worker killed too often, a cancelled task, a lost scheduler: see
    :func:`_lost`), not the measurement's.  A check that raises turns into an ``inconclusive`` verdict
    (:meth:`proofs.claim.Claim.run`), as serially; a lost point is re-raised when the claim returns,
    so the run stops naming claim, seed, width and rep, as for a claim task that fails for good."""

    def __init__(self, client=None, task: str = "", nested: bool = False):
        if client is None and not nested:
            raise ValueError("a PointExecutor needs a client, or nested=True inside a Dask task")
        self.client = client
        self.task = str(task)
        self.nested = bool(nested)
        self.points_submitted = 0
        self.rounds_serial = 0
        self.rounds_busy = 0
        self.lost: Optional[PointFailed] = None

    def map(self, measure: Callable[[int, int], Any], points: Sequence[Tuple[int, int]]) -> Optional["PointRound"]:
        """A :class:`PointRound` of ``measure(width, rep)`` at ``points`` (nothing runs until it is
        iterated), or ``None`` when the round must run serially where the caller is (``measure`` cannot
        be pickled, or a nested executor finds no worker around it)."""
        points = [(int(w), int(r)) for w, r in points]
        try:
            import cloudpickle

            size = len(cloudpickle.dumps(measure))
        except Exception:  # noqa: BLE001 -- unpicklable closure (a lock, a generator, ...): run it here
            self.rounds_serial += 1
            return None
        if self.nested:
            try:
                from distributed import get_worker

                get_worker()
            except (ImportError, ValueError):
                self.rounds_serial += 1
                return None
            if _claims_waiting(self._client()):
                self.rounds_busy += 1
                return None
        return PointRound(self, measure, points, scatter=size > SCATTER_BYTES)

    def _client(self):
        if not self.nested:
            return self.client
        from distributed import get_client

        return get_client()


class PointRound:
    """The points of one sweep round as tasks.  ``len()`` is the number of points; iterating submits
    them (all at once, :data:`RETRIES` retries, priority :data:`POINT_PRIORITY` plus the rank of the
    point's width in the round: the widest, slowest points start first) and yields ``(index,
    result)`` in COMPLETION order (the caller puts them back in point order), so a progress wrapper
    around it moves as points finish.  A point that fails for good cancels the rest of the round and
    raises :class:`PointFailed`; so does leaving the iteration early (the rest is cancelled)."""

    def __init__(self, executor: PointExecutor, measure: Callable, points: List[Tuple[int, int]],
                 scatter: bool = False):
        self.executor, self.measure, self.points, self.scatter = executor, measure, points, scatter

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[Tuple[int, Any]]:
        if not self.points:
            return
        ex = self.executor
        client = ex._client()
        fn = client.scatter(self.measure, hash=False) if self.scatter else self.measure
        token = uuid.uuid4().hex[:8]
        where = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in ex.task)[:80]
        # widest first (longest processing time first: the round ends sooner); results are unaffected
        rank = {w: k for k, w in enumerate(sorted({w for w, _ in self.points}))}
        futures = [client.submit(_run_point, fn, w, r, key=f"ngd-point-{token}-{where}-w{w}-r{r}", pure=False,
                                 retries=RETRIES, priority=POINT_PRIORITY + rank[w]) for w, r in self.points]
        ex.points_submitted += len(futures)
        seceded = ex.nested and _secede()
        done = 0
        try:
            for i, future, exc in _completed(client, futures):
                if exc is not None:
                    w, r = self.points[i]
                    failed = PointFailed(ex.task, w, r, exc, done, len(futures))
                    if _lost(exc) and ex.lost is None:
                        ex.lost = failed
                    raise failed from exc
                result = future.result()
                done += 1
                yield i, result
        finally:
            if done < len(futures):
                try:
                    client.cancel(futures)
                except Exception:  # noqa: BLE001 -- the cluster may be gone already
                    pass
            if seceded:
                from distributed import rejoin

                rejoin()


def _claims_waiting(client) -> bool:
    """Whether tasks other than sweep points wait for a worker thread (queued on the scheduler, or
    assigned to a worker whose threads are all taken by tasks that have not seceded).

    A claim task asks this before each round: while claims wait, the cluster is busy with whole
    claims, and the round runs inside its claim task, as before points were tasks.  Seceding then
    would start a waiting claim in the freed slot: one more claim's memory on the worker, a rejoin
    that waits for that claim, and -- measured on the quick run of all claims, 67 s against 115 s --
    the claims that share an ``lru_cache``'d sweep (``ngd.exact.one_step`` / ``test_predictor``,
    the K-FAC and layer-wise claims) computing it twice, because the first had not finished it.  In
    the tail of a run (fewer claims than threads) and for a run of one claim, rounds are tasks.
    Unknown (the scheduler cannot be asked): ``False``."""
    prefix = "ngd-point-"

    def count(dask_scheduler=None):  # runs on the scheduler; nested, so pickled by value
        waiting = sum(1 for ts in dask_scheduler.tasks.values()
                      if ts.state in ("queued", "no-worker") and not str(ts.key).startswith(prefix))
        for ws in dask_scheduler.workers.values():
            running = [ts for ts in ws.processing
                       if ts not in ws.long_running and not str(ts.key).startswith(prefix)]
            waiting += max(0, len(running) - ws.nthreads)
        return waiting

    try:
        return int(client.run_on_scheduler(count)) > 0
    except Exception:  # noqa: BLE001 -- a heuristic: never fail a sweep for it
        return False


class TaskLost(RuntimeError):
    """The cause of a task that ended without an exception of its own."""


def _outcome(future) -> Optional[BaseException]:
    """``None`` when ``future`` (yielded by ``as_completed``) has its result, else why not.  A result
    that went with a dying worker after the task finished (status ``lost``) is recomputed by the
    scheduler: this waits for it (``future.result()`` blocks until then) rather than failing."""
    if future.status == "finished":
        return None
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001 -- its own exception, KilledWorker, cancelled, scheduler gone
        return exc
    if future.status == "finished":
        return None
    return TaskLost(f"the task ended with status {future.status!r}")


def _lost(exc: BaseException) -> bool:
    """Whether a task's failure is the cluster's (``KilledWorker``, a cancelled future, a closed comm:
    exceptions of Dask, :mod:`concurrent.futures` or :mod:`asyncio`), not an exception of its function."""
    import asyncio
    import concurrent.futures

    if isinstance(exc, (concurrent.futures.CancelledError, asyncio.CancelledError, TaskLost)):
        return True
    return type(exc).__module__.split(".")[0] in ("distributed", "dask", "tornado")


def _secede() -> bool:
    """Leave the worker's thread pool (this thread is a task waiting for its points); ``False`` when
    this thread is not a task's (nothing to leave)."""
    from distributed import secede

    try:
        secede()
    except (AttributeError, KeyError, ValueError):  # not a task thread, or seceded already
        return False
    return True


# ----------------------------------------------------------------------------- serial == distributed
#: keys whose values are timings or describe the run, not its results
VOLATILE_KEYS = ("seconds", "mean_seconds", "timestamp", "environment", "execution", "spent")
_NUMBER = __import__("re").compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _close(a: float, b: float, rel: float, atol: float = 0.0) -> bool:
    return a == b or abs(a - b) <= max(rel * max(abs(a), abs(b)), atol)


def json_differences(a: Any, b: Any, rel: float = 1e-9, ignore: Sequence[str] = VOLATILE_KEYS,
                     path: str = "", atol: float = 0.0) -> List[str]:
    """Where two JSON documents differ beyond ``rel`` relative in any number (numbers inside strings
    too; the rest of a string must match exactly), ignoring keys in ``ignore`` (timings, the machine).
    ``[]`` when they agree.  ``atol`` > 0 also accepts numbers within ``atol`` of each other: residuals
    that are rounding noise (an error of 4e-16 against 9e-16 when a BLAS thread count changes the
    summation order) differ by far more than 1e-9 relative.

    >>> json_differences({"x": 1.0, "seconds": 3}, {"x": 1.0 + 1e-12, "seconds": 4})
    []
    >>> json_differences({"v": "err 0.5 at 3"}, {"v": "err 0.6 at 3"})
    ["/v: 'err 0.5 at 3' != 'err 0.6 at 3'"]
    """
    out: List[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in ignore:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'the second' if k not in a else 'the first'}")
                continue
            out += json_differences(a[k], b[k], rel, ignore, f"{path}/{k}", atol)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: lengths {len(a)} != {len(b)}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                out += json_differences(x, y, rel, ignore, f"{path}[{i}]", atol)
    elif isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if a != b:
            out.append(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not _close(float(a), float(b), rel, atol):
            out.append(f"{path}: {a!r} != {b!r} (relative {abs(a - b) / max(abs(a), abs(b)):.3g})")
    elif isinstance(a, str) and isinstance(b, str):
        if a != b:
            na, nb = _NUMBER.findall(a), _NUMBER.findall(b)
            same_text = _NUMBER.sub("#", a) == _NUMBER.sub("#", b) and len(na) == len(nb)
            if not (same_text and all(_close(float(x), float(y), rel, atol) for x, y in zip(na, nb))):
                out.append(f"{path}: {a[:120]!r} != {b[:120]!r}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")
    return out
