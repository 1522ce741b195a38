"""Many branches followed at once (SubscribeCommit) on one event-loop thread.

A blocking subscription needs a thread of its own for as long as it is open, and gRPC's
blocking iterator wakes that thread every 100 ms; a process following a thousand branches
would hold a thousand threads, all waking. Here every subscription of the process is a
coroutine on one asyncio loop (``grpc.aio``), on one channel per distinct pachd connection
(address, token, certificates, dialled addresses), shared by the branches on it.

    hub = Subscriptions(backoff_first=1, backoff_max=30).start()
    following = hub.follow(client, 'default', 'images', 'master', listener)
    ...
    following.cancel()

``follow`` keeps the branch followed until cancelled: it finds the newest finished commit
of the branch, subscribes after it, and reports to ``listener`` on the loop thread:
``subscribed(start)`` once the subscription is open (everything up to ``start`` is the
caller's to read, everything after comes as events), ``commit(commit_id)`` per commit that
finished, and ``failed(error, retry_in)`` when it broke (a PachdError, token scrubbed), after
which it subscribes again in ``retry_in`` seconds: a back-off from ``backoff_first`` doubling
to ``backoff_max``, each wait jittered by +-20 %, started over after a subscription that
lasted longer than ``backoff_max``. Listener methods must return at once (hand the work to
another thread); an exception in one is logged, never stops the following.

The stream has no deadline (a branch may be quiet for hours); the channel's keepalive pings
(``channels``, the same options as ``PachdClient``'s) find a pachd that died or froze, and the
stream then fails like any other. The start-point calls are bounded by the client's timeout
and wait for the channel to connect within it, so after a pachd restart every subscription
on the channel resumes as soon as the connection is back.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
from typing import Dict, Optional, Protocol

import grpc
import grpc.aio

from ._sdk import pfs as _pfs
from . import channels
from .client import PachdClient
from .errors import PachdError, PachdNotFound, PachdUnavailable, map_error

logger = logging.getLogger(__name__)

_START_POINT_DEPTH = 100  # parents walked past open or failed commits to find a finished one


class BranchListener(Protocol):
    """What a following reports; called on the loop thread, so each call must return at once."""

    def subscribed(self, start: str) -> None: ...

    def commit(self, commit_id: str) -> None: ...

    def failed(self, error: PachdError, retry_in: float) -> None: ...


class Following:
    """One branch followed by a ``Subscriptions`` hub; ``cancel()`` from any thread."""

    def __init__(self, hub: 'Subscriptions', client: PachdClient, project: str, repo: str, branch: str,
                 listener: BranchListener):
        self.hub = hub
        self.client = client
        self.project, self.repo, self.branch = project, repo, branch
        self.listener = listener
        self._task: Optional[asyncio.Task] = None
        self._cancelled = False
        self._ended = threading.Event()

    @property
    def label(self) -> str:
        return f'{self.project}/{self.repo}@{self.branch}'

    def cancel(self) -> None:
        """Stop following: the stream is cancelled and no listener method is called after it ends."""
        self._cancelled = True
        self.hub._call_soon(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        else:
            self._ended.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the following has ended (after ``cancel()``); True if it has."""
        return self._ended.wait(timeout)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()


def _connection_key(client: PachdClient) -> tuple:
    """What makes two clients' connections the same; secrets only as digests."""
    def digest(value):
        return hashlib.sha256(value).hexdigest() if value else None

    token = client._token.encode() if client._token else None
    return (client.address, digest(token), digest(client._root_certs), client._dial_ips)


class _Channel:
    """One grpc.aio channel and the followings using it."""

    def __init__(self, client: PachdClient):
        target, extra = channels.dial_target(client.address, client._dial_ips)
        options = channels.channel_options(client._reconnect_grace()) + extra
        tls = channels.credentials(client.address, client._root_certs)
        if tls is not None:
            self.channel = grpc.aio.secure_channel(target, tls, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.metadata = (('authn-token', client._token),) if client._token else ()
        self.users = 0
        self.subscribe = self._method('unary_stream', 'SubscribeCommit', _pfs.SubscribeCommitRequest, _pfs.CommitInfo)
        self.inspect_branch = self._method('unary_unary', 'InspectBranch', _pfs.InspectBranchRequest, _pfs.BranchInfo)
        self.inspect_commit = self._method('unary_unary', 'InspectCommit', _pfs.InspectCommitRequest, _pfs.CommitInfo)
        self.inspect_repo = self._method('unary_unary', 'InspectRepo', _pfs.InspectRepoRequest, _pfs.RepoInfo)

    def _method(self, kind: str, name: str, request, response):
        """A pfs_v2.API method on this channel (``kind``: grpc's unary_unary or unary_stream)."""
        return getattr(self.channel, kind)(f'/pfs_v2.API/{name}', request_serializer=request.SerializeToString,
                                           response_deserializer=response.FromString)


class Subscriptions:
    """Every following of the process, on one thread; see the module docstring."""

    def __init__(self, backoff_first: float = 1.0, backoff_max: float = 30.0, name: str = 'pachd-subscriptions'):
        self.backoff_first = float(backoff_first)
        self.backoff_max = float(backoff_max)
        self._name = name
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._channels: Dict[tuple, _Channel] = {}  # touched on the loop thread only
        self._followings: set = set()  # touched on the loop thread only
        self._ready = threading.Event()

    # -- lifecycle
    def start(self) -> 'Subscriptions':
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            self._ready.wait()
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every following, close the channels and end the thread."""
        if self._loop is None or self._thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            future.result(timeout)
        except Exception:  # already stopping, or a channel slow to close: the thread is a daemon
            logger.debug('pachd subscriptions: shutdown incomplete', exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    async def _shutdown(self) -> None:
        tasks = [f._task for f in self._followings if f._task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for holder in list(self._channels.values()):
            await holder.channel.close()
        self._channels.clear()

    def _call_soon(self, callback) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            callback()  # nothing runs on the loop any more; the callback only marks state
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop closed meanwhile
            callback()

    # -- following
    def follow(self, client: PachdClient, project: str, repo: str, branch: str,
               listener: BranchListener) -> Following:
        """Follow ``project/repo@branch`` on ``client``'s pachd until ``cancel()``; see the module docstring."""
        if self._loop is None:
            raise RuntimeError('Subscriptions.start() first')
        following = Following(self, client, project, repo, branch, listener)
        self._call_soon(lambda: self._begin(following))
        return following

    def _begin(self, following: Following) -> None:
        if following._cancelled:
            following._ended.set()
            return
        self._followings.add(following)
        following._task = self._loop.create_task(self._follow(following))

    def counts(self) -> dict:
        """How many followings and channels are open (read from any thread; a snapshot)."""
        return {'followings': len(self._followings), 'channels': len(self._channels)}

    def _acquire_channel(self, client: PachdClient) -> tuple:
        key = _connection_key(client)
        holder = self._channels.get(key)
        if holder is None:
            holder = self._channels[key] = _Channel(client)
        holder.users += 1
        return key, holder

    async def _release_channel(self, key: tuple) -> None:
        holder = self._channels.get(key)
        if holder is None:
            return
        holder.users -= 1
        if holder.users <= 0:
            del self._channels[key]
            await holder.channel.close()

    async def _follow(self, following: Following) -> None:
        key, holder = self._acquire_channel(following.client)
        call = None
        try:
            delay = self.backoff_first
            while True:
                opened = self._loop.time()
                try:
                    start = await self._start_point(holder, following)
                    call = holder.subscribe(self._request(following, start), metadata=holder.metadata)
                    self._report(following, 'subscribed', start)
                    async for info in call:
                        self._report(following, 'commit', info.commit.id)
                    raise PachdUnavailable(f'pachd at {following.client.address.url} ended the subscription')
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if call is not None:
                        call.cancel()
                        call = None
                    error = self._error(exc, following)
                    if self._loop.time() - opened > self.backoff_max:
                        delay = self.backoff_first  # it worked for a while: start the back-off over
                    wait = min(delay, self.backoff_max) * random.uniform(0.8, 1.2)
                    self._report(following, 'failed', error, wait)
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, self.backoff_max)
        except asyncio.CancelledError:
            pass
        finally:
            if call is not None:
                call.cancel()
            self._followings.discard(following)
            following._ended.set()
            await self._release_channel(key)

    @staticmethod
    def _report(following: Following, event: str, *args) -> None:
        if following._cancelled:
            return
        try:
            getattr(following.listener, event)(*args)
        except Exception:  # a listener's bug must not end the following
            logger.exception('pachd subscriptions: %s: the %s listener failed', following.label, event)

    def _error(self, exc: BaseException, following: Following) -> PachdError:
        client = following.client
        return map_error(exc, client.address.url, client._token)

    @staticmethod
    def _repo(following: Following):
        return _pfs.Repo(name=following.repo, type='user', project=_pfs.Project(name=following.project))

    def _request(self, following: Following, start: str):
        repo = self._repo(following)
        request = _pfs.SubscribeCommitRequest(repo=repo, branch=following.branch or '',
                                              state=_pfs.CommitState.FINISHED, all=True)
        if start:
            request.from_ = _pfs.Commit(repo=repo, id=start)
        return request

    async def _start_point(self, holder: _Channel, following: Following) -> str:
        """The newest finished commit of the branch now ('' when it has none): the subscription starts after it.

        Not simply the head: an open head would be skipped as the starting commit and never
        reported when it finishes.
        """
        client = following.client
        bounds = {'timeout': client.timeout, 'metadata': holder.metadata, 'wait_for_ready': True}
        repo = self._repo(following)
        try:
            branch = await holder.inspect_branch(
                _pfs.InspectBranchRequest(branch=_pfs.Branch(repo=repo, name=following.branch)), **bounds)
        except grpc.aio.AioRpcError as exc:
            error = self._error(exc, following)
            if not isinstance(error, PachdNotFound):
                raise error from None
            try:  # which is missing: the repo (an error) or only the branch (subscribe; it may come)
                await holder.inspect_repo(_pfs.InspectRepoRequest(repo=repo), **bounds)
            except grpc.aio.AioRpcError as repo_exc:
                repo_error = self._error(repo_exc, following)
                if isinstance(repo_error, PachdNotFound):
                    raise PachdNotFound(f"repo '{following.repo}' not found in project '{following.project}'",
                                        kind='repo', name=f'{following.project}/{following.repo}') from None
                raise repo_error from None
            return ''
        head = branch.head.id if branch.is_set('head') else ''
        for _ in range(_START_POINT_DEPTH):
            if not head:
                return ''
            info = await holder.inspect_commit(
                _pfs.InspectCommitRequest(commit=_pfs.Commit(repo=repo, id=head)), **bounds)
            if info.is_set('finished'):
                return head
            head = info.parent_commit.id if info.is_set('parent_commit') else ''
        return ''
