"""Shared by the benchmarks: a private stack (as the tests run it) and a results writer."""
import contextlib
import json
import os
import platform
import tempfile
import time

from tests.stack import Stack

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@contextlib.contextmanager
def private_stack():
    """Every service as its own process against a private database and vhost; torn down after."""
    stack = Stack(tempfile.mkdtemp(prefix="outreach-bench-"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def write_results(name, figures):
    os.makedirs(RESULTS, exist_ok=True)
    figures = dict(figures, measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   machine={"cpus": os.cpu_count(), "python": platform.python_version()})
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"wrote {path}")
    return path
