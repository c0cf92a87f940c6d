"""waitress's task queue with interactive requests first (phlite/httpserver.py, docs/design.md "HTTP
server threads"): under SDK load an events-list read no longer waits behind every queued capture."""

import threading

from phlite import httpserver


class Connection:
    """What the dispatcher queues: a waitress channel with its pending requests; service() runs one."""

    def __init__(self, path, log, gate=None):
        request = type("Request", (), {})()
        if path is not None:
            request.path = path
        self.requests = [request]
        self.log, self.gate = log, gate
        self.started, self.done = threading.Event(), threading.Event()

    def service(self):
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.log.append(getattr(self.requests[0], "path", "unparsed"))
        self.done.set()


def test_interactive_requests_jump_the_queue_of_sdk_requests():
    log, gate = [], threading.Event()
    d = httpserver._Dispatcher()
    d.set_thread_count(1)
    try:
        first = Connection("/e/", log, gate)
        d.add_task(first)  # takes the only thread, until the gate opens
        assert first.started.wait(10)
        tasks = [Connection(path, log) for path in ("/i/v0/e/", "/flags/", "/api/projects/1/feature_flags/local_evaluation",
                                                    "/batch/", "/api/projects/1/events/", "/console/persons")]
        tasks.insert(2, Connection(None, log))  # a request waitress failed to parse has no path: plain FIFO
        for task in tasks:
            d.add_task(task)
        gate.set()
        assert all(task.done.wait(10) for task in tasks)
    finally:
        gate.set()
        d.shutdown(timeout=10)
    assert log == ["/e/", "/console/persons", "/api/projects/1/events/", "/i/v0/e/", "/flags/", "unparsed",
                   "/api/projects/1/feature_flags/local_evaluation", "/batch/"]


def test_which_paths_are_interactive():
    assert httpserver.interactive("/api/projects/1/events/")
    assert httpserver.interactive("/console/")
    for path in ("/e/", "/i/v0/e/", "/batch/", "/flags/?v=2", "/decide/", "/api/surveys/", "/array/phc_x/config",
                 "/api/feature_flag/local_evaluation", "/api/projects/1/feature_flags/local_evaluation"):
        assert not httpserver.interactive(path), path
