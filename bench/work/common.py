"""What every measured process shares: Django start-up, owners and projects, timing and peak RSS.

A worker is started by the runner with its environment (database, data dir, hosts)
already set; it prints one ``BENCH_RESULT {json}`` line and exits.
"""
from __future__ import annotations

import json
import os
import resource
import time
from contextlib import ExitStack, contextmanager

RESULT_MARK = 'BENCH_RESULT '

IMAGE_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>
"""
TEXT_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="pos"/><Choice value="neg"/>
  </Choices>
</View>
"""


def setup_django() -> None:
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'label_studio_pachyderm.settings')
    import django

    django.setup()


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """Resident set size right now (Linux /proc; 0 elsewhere)."""
    try:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except (OSError, ValueError):
        return 0.0


def make_owner(email: str = 'bench@example.com'):
    """A user with an organization, as Label Studio's sign-up makes them."""
    from organizations.models import Organization
    from users.models import User

    user = User.objects.filter(email=email).first()
    if user is not None:
        return user
    user = User.objects.create_user(email=email, password='bench-pass-123')
    org = Organization.create_organization(created_by=user, title='Bench')
    user.active_organization = org
    user.save()
    return user


def make_project(user, label_config: str, title: str):
    from projects.models import Project

    return Project.objects.create(title=title, created_by=user, organization=user.active_organization,
                                  label_config=label_config)


# Context-manager factories entered around every measured block (the profiler hooks in here).
TIMED_HOOKS: list = []


class Measure:
    """Wall time and CPU time of one block; the numbers the table is made of."""

    def __init__(self):
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.load_before = os.getloadavg()[0]
        self.load_after = 0.0
        self.rss_before = 0.0

    @contextmanager
    def timing(self):
        with ExitStack() as hooks:
            self.rss_before = rss_now_mb()
            for hook in TIMED_HOOKS:
                hooks.enter_context(hook())
            with self._clock():
                yield self

    @contextmanager
    def _clock(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield self
        finally:
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu
            self.load_after = os.getloadavg()[0]

    def result(self, items: int, **extra) -> dict:
        return dict(seconds=self.seconds, cpu_seconds=self.cpu_seconds, items=items, rss_mb=rss_mb(),
                    rss_before_mb=self.rss_before, load=max(self.load_before, self.load_after), **extra)


def emit(result: dict) -> None:
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


def storage_outcome(storage) -> dict:
    """What Label Studio recorded about a sync: status, counters, the first error line."""
    storage.refresh_from_db()
    meta = storage.meta or {}
    return dict(status=storage.status, last_sync_count=storage.last_sync_count, meta=_small(meta),
                traceback=(storage.traceback or '').strip().splitlines()[-1:] or None)


def _small(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if not isinstance(v, (list, dict)) or len(json.dumps(v)) < 400}


def require(condition: bool, message: str) -> None:
    """A sync that silently did less than asked must not produce a number."""
    if not condition:
        raise AssertionError(message)
