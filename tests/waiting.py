"""Waiting on a condition with a deadline, the one way the tests wait for something to happen.

A test never sleeps for "long enough": it polls for the event it needs, and fails with a
message naming that event once the deadline passes. A test that asserts something did
NOT happen first waits for a positive event proving the moment in question is behind us
(a later commit imported, a log line, a meta field), then asserts the absence.
"""
import time
from pathlib import Path


def wait_for(predicate, timeout=60.0, what='condition', *, interval=0.2, ignore=(), process=None, log=None):
    """Call ``predicate()`` until it returns something truthy, and return that value.

    ``timeout``: seconds before an AssertionError naming ``what``. ``ignore``: exception types
    meaning "not yet" (the last one is shown at the timeout). ``process``: a process (anything
    with ``poll()``, like ``subprocess.Popen``) that must keep running meanwhile. ``log``: a path,
    or a callable returning text, shown when the wait fails (its last 6000 characters).
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as exc:
            last_error = exc
        if process is not None and process.poll() is not None:
            raise AssertionError(f'the process exited (status {process.poll()}) while waiting for {what}'
                                 + _tail(log))
        if time.monotonic() >= deadline:
            message = f'timed out after {timeout:g} s waiting for {what}'
            if last_error is not None:
                message += f'; last error: {last_error}'
            raise AssertionError(message + _tail(log)) from last_error
        time.sleep(interval)


def eventually(check, timeout=60.0, what='the check to pass', **kwargs):
    """``check()``'s value once it no longer raises AssertionError (its last failure is shown at the timeout)."""
    return wait_for(lambda: (check(),), timeout, what, ignore=AssertionError, **kwargs)[0]


def _tail(log) -> str:
    if log is None:
        return ''
    text = log() if callable(log) else Path(log).read_text(errors='replace')
    return f'\n--- log ---\n{text[-6000:]}'
