"""gunicorn hooks for the Prometheus metrics of several workers (read by ``gunicorn`` from this folder).

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its counters to files in that folder and
``/metrics`` adds them up: the folder is emptied when gunicorn starts, and a dead worker's live
gauges are dropped. Settings such as ``--workers`` and ``--bind`` stay on the command line.
"""

import os
import shutil


def on_starting(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)  # counts of a previous run would be added again
        os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
