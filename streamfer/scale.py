"""Folder runs scaled out on a Ray cluster: each input file is one task for a pool of actors,
each actor holding a loaded :class:`~streamfer.pipeline.Pipeline` (model and detector
loaded once) and running the very code of a serial folder run, so the outputs are the same.

Every node must see the input and output folders at the same path (a shared filesystem:
NFS, SMB, a cloud bucket mounted with a FUSE driver); Ray carries only the tasks and their
small results. Finished inputs are recorded, as in a serial run, in the output folder's
``.streamfer-done.json`` by the driver alone, after a task reports success; outputs appear
under their names only when finalised (``.part`` files until then), so a worker killed
mid-file leaves nothing that looks finished: Ray restarts the actor (a new process, on any
node with room) and runs the file again there.

Example:
    >>> from streamfer.scale import run_folder_on_ray
    >>> results = run_folder_on_ray(Settings(), "footage/", "out/", "out/",
    ...                             address="local", workers=2)          # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

from streamfer.batch import (
    ELSEWHERE,
    INTERRUPTED,
    NOT_STARTED,
    FolderRun,
    Job,
    count_frames,
)
from streamfer.interrupts import STOP_SIGNALS, stop_requested
from streamfer.pipeline import Pipeline, RunStats, Settings, outcome

CPUS_PER_WORKER = 2


class Worker:
    """A Ray actor: one Pipeline, loaded once, for many files."""

    def __init__(self, settings: Settings) -> None:
        self.pipeline = Pipeline(settings)

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: Job) -> RunStats:
        try:
            return self.pipeline.run(str(job.path), job.output, job.table, name=job.key,
                                     whole_only=True)
        except Exception as exc:  # the file's own cause, not "worker lost"
            return RunStats(job.key, status=outcome(exc))


def default_workers(address: str = "local") -> int:
    """One worker per two cores: of this machine for ``local``, else of the whole cluster
    (its CPUs as Ray counts them; call it once connected)."""
    if address == "local":
        cpus = os.cpu_count() or 1
    else:
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
    return max(1, int(cpus) // CPUS_PER_WORKER)


def connect(address: str, workers: int):
    """``ray.init`` for ``address``: ``local`` (a Ray started here, sized for ``workers``),
    ``auto`` (the cluster ``ray start --head`` made) or ``ray://host:port``."""
    import ray

    quiet = {"log_to_driver": False, "configure_logging": True, "logging_level": "error"}
    if address == "local":
        return ray.init(num_cpus=workers * CPUS_PER_WORKER, include_dashboard=False, **quiet)
    with warnings.catch_warnings():  # a cluster out of reach: our one line says so (the
        warnings.simplefilter("ignore")  # caller), not Ray Client's warning with a link
        return ray.init(address=address, **quiet)


def run_folder_on_ray(settings: Settings, folder: str | Path, output_dir, csv_dir,
                      force: bool = False, address: str = "local",
                      workers: int | None = None) -> list[RunStats]:
    """Every video and photo below ``folder`` through a pool of ``workers`` Ray actors; the same
    plan, resume rules, per-file error handling and outputs as a serial folder run."""
    import ray

    from streamfer.pipeline import progress_bar

    batch = FolderRun.plan(folder, output_dir, csv_dir, settings, force)
    todo = batch.todo
    results = {key: RunStats(key, status=said) for key, said in batch.before().items()}
    connect(address, workers or default_workers("local"))
    workers = workers or default_workers(address)
    remote = ray.remote(num_cpus=CPUS_PER_WORKER, max_restarts=3, max_task_retries=3)(Worker)
    actors = [remote.remote(settings) for _ in range(min(workers, max(1, len(todo))))]
    try:  # a first Ctrl-C or SIGTERM (over the handler Ray's driver installs) stops handing
        # out files: those under way are stopped, their outputs left as part files, and the
        # summary says so; a second stops at once
        ended = threading.Event()  # the loop's end, or a stop: the frame count stops too
        with progress_bar(settings.progress) as progress, \
                stop_requested(also=ended, signals=STOP_SIGNALS) as stopping:
            bar = progress.add_task(f"{len(todo)} files on {len(actors)} workers",
                                    total=None, fps=0.0)
            # the bar's total, counted while the work starts (not before: 4 ms a clip to
            # open here, 80 s for 20,000, more on a network share)
            counter = count_frames(todo, settings, stop=ended, on_total=lambda n:
                                   progress.update(bar, total=n)) \
                if settings.progress and todo else None
            queue, idle, pending = list(todo), list(actors), {}
            while (queue or pending) and not stopping.is_set():
                while idle and queue:
                    job = queue.pop(0)
                    if not batch.claim(job):  # another run into this folder has it
                        results[job.key] = RunStats(job.key, status=ELSEWHERE)
                        continue
                    actor = idle.pop()
                    pending[actor.run.remote(job)] = (job, actor)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                if not ready:
                    continue
                job, actor = pending.pop(ready[0])
                idle.append(actor)
                try:
                    stats = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # its retries spent too
                    stats = RunStats(job.key, status=f"failed: worker lost "
                                                     f"({type(exc).__name__})")
                results[job.key] = stats
                if stats.status == "ok":
                    batch.finished(job)
                batch.release(job)
                progress.update(bar, advance=stats.frames, fps=stats.fps)
            ended.set()
            if counter:
                counter.join()
            if not stopping.is_set():  # the bar ends full (the containers' counts estimate)
                progress.update(bar, total=next(t.completed for t in progress.tasks
                                                 if t.id == bar))
            else:
                results |= {job.key: RunStats(job.key, status=INTERRUPTED)
                            for job, _ in pending.values()}
                results |= {job.key: RunStats(job.key, status=NOT_STARTED) for job in queue}
    finally:
        batch.close()
        if address == "local":  # the Ray started here goes, its workers with it
            ray.shutdown()
        else:  # a cluster's stays: our workers on it are stopped
            for actor in actors:
                ray.kill(actor)
    return [results[job.key] for job in batch.jobs]

