"""pachd's transactions (``transaction_v2.API``): PFS writes recorded now, applied together later.

As pachd 2.12 does it (src/server/transaction/server/driver.go, src/internal/transactionenv/env.go):

* StartTransaction records an empty transaction under a new id (a UUID without dashes).
* A PFS write (CreateRepo, CreateBranch, DeleteBranch, FinishCommit here) whose call carries
  the gRPC metadata ``pach-transaction: <id>`` is not applied: the transaction's requests
  plus this one are *dry run* (run, then rolled back), and if that succeeds the request is
  appended and the call returns its response at once. If the dry run fails, the call fails
  with that error and nothing is appended: a bad request is refused when it is sent.
  An empty id is an id like any other (pachd reads the key's value as it is), so a client
  that sends ``pach-transaction: ""`` is told ``transactions  not found``.
* FinishTransaction runs every request in order in one database transaction and deletes the
  transaction; if request *i* of *n* fails, nothing is applied, the transaction stays open
  and the call fails with ``error running request i of n: <the request's error>``, keeping
  that error's gRPC code (pachd's errors interceptor keeps a wrapped error's code).
* BatchTransaction runs a list of requests the same way without recording anything.
* An unknown id (never started, finished or deleted) fails with ``transactions <id> not
  found``. pachd's collection error carries no gRPC status, so the code is UNKNOWN, not
  NOT_FOUND (the sdk's ``transaction_exists`` expects NOT_FOUND and so raises, on pachd too).
* ListTransaction lists the open transactions in the order they were started.

Open transactions live in the store's SQLite database (table ``transactions``), as pachd
keeps them in its own: a restarted server still has them.

Not run inside a transaction (UNIMPLEMENTED, at the call that tries): StartCommit (pachd
gives its commit the transaction's id), DeleteRepo, SquashCommitSet, and the pipeline and
job requests. Commits that a request creates as a side effect (a new branch's empty head)
get ids of their own, not the transaction's id as in pachd.

This module knows the sdk's messages but not gRPC: the service turns a request into store
calls through the ``operations`` it is given, and turns the errors raised here into statuses.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import betterproto
from pachyderm_sdk.api import transaction as txn_api

from . import errors, names
from .errors import PFSError

TRANSACTION_METADATA_KEY = 'pach-transaction'

# An operation applies one kind of request to the store; None stands for an empty response.
Operation = Callable[[betterproto.Message], Optional[txn_api.TransactionResponse]]

# The request kinds pachd knows (TransactionRequest's fields), and how localpfs calls them.
_REQUEST_NAMES = {
    'create_repo': 'CreateRepo', 'delete_repo': 'DeleteRepo', 'start_commit': 'StartCommit',
    'finish_commit': 'FinishCommit', 'squash_commit_set': 'SquashCommitSet', 'create_branch': 'CreateBranch',
    'delete_branch': 'DeleteBranch', 'update_job_state': 'UpdateJobState', 'stop_job': 'StopJob',
    'create_pipeline_v2': 'CreatePipeline',
}


def transaction_id_of(metadata) -> Optional[str]:
    """The transaction a call's metadata names, or None; two of them is an error, as in pachd."""
    ids = [value for key, value in metadata or () if key == TRANSACTION_METADATA_KEY]
    if len(ids) > 1:
        raise errors.Unknown('multiple active transactions found in context')
    return ids[0] if ids else None


def not_found(txn_id: str) -> errors.Unknown:
    return errors.Unknown(f'transactions {txn_id} not found')


class Transactions:
    def __init__(self, store, operations: dict[str, Operation]):
        self.store = store
        self.db = store.db
        self.operations = operations

    # -- the API -------------------------------------------------------------------------
    def start(self) -> txn_api.Transaction:
        info = txn_api.TransactionInfo(transaction=txn_api.Transaction(id=names.new_commit_id()),
                                       requests=[], responses=[], started=_now(), version=0)
        with self.db.write() as conn:
            conn.execute('INSERT INTO transactions(id, info) VALUES (?, ?)', (info.transaction.id, bytes(info)))
        return info.transaction

    def inspect(self, txn_id: str) -> txn_api.TransactionInfo:
        with self.db.read() as conn:
            return self._load(conn, txn_id)

    def list(self) -> list[txn_api.TransactionInfo]:
        with self.db.read() as conn:
            rows = conn.execute('SELECT info FROM transactions ORDER BY seq').fetchall()
        return [txn_api.TransactionInfo().parse(row[0]) for row in rows]

    def delete(self, txn_id: str) -> None:
        with self.db.write() as conn:
            if not conn.execute('DELETE FROM transactions WHERE id = ?', (txn_id,)).rowcount:
                raise not_found(txn_id)

    def delete_all(self) -> None:
        with self.db.write() as conn:
            conn.execute('DELETE FROM transactions')

    def append(self, txn_id: str, request: txn_api.TransactionRequest) -> txn_api.TransactionResponse:
        """Record ``request`` in the transaction once a dry run of all its requests succeeds;
        the request's response from that dry run."""
        with self.db.write() as conn:
            info = self._load(conn, txn_id)
            info.requests.append(request)
            with self._rolled_back(conn):
                info.responses = self._run(info.requests)
            info.version += 1
            conn.execute('UPDATE transactions SET info = ? WHERE id = ?', (bytes(info), txn_id))
        return info.responses[-1]

    def finish(self, txn_id: str) -> txn_api.TransactionInfo:
        """Apply every request of the transaction at once and forget it; on a failure, nothing."""
        try:
            with self.db.write() as conn:
                info = self._load(conn, txn_id)
                info.responses = self._run(info.requests)
                conn.execute('DELETE FROM transactions WHERE id = ?', (txn_id,))
        finally:
            self._tell_readers()
        return info

    def batch(self, requests: list[txn_api.TransactionRequest]) -> txn_api.TransactionInfo:
        info = txn_api.TransactionInfo(transaction=txn_api.Transaction(id=names.new_commit_id()),
                                       requests=list(requests), started=_now())
        try:
            with self.db.write():
                info.responses = self._run(info.requests)
        finally:
            self._tell_readers()
        return info

    # -- running requests ----------------------------------------------------------------
    def _run(self, requests: list) -> list[txn_api.TransactionResponse]:
        """Run ``requests`` in order on the open write transaction; the first failure is raised
        with pachd's ``error running request i of n`` prefix and the same code."""
        responses = []
        for number, request in enumerate(requests, 1):
            try:
                responses.append(self._run_one(request))
            except PFSError as err:
                raise type(err)(f'error running request {number} of {len(requests)}: {err.message}') from err
        return responses

    def _run_one(self, request: txn_api.TransactionRequest) -> txn_api.TransactionResponse:
        for field in dataclasses.fields(request):  # in field order: the first one set counts, as in pachd
            value = getattr(request, field.name)
            if value is None or not betterproto.serialized_on_wire(value):
                continue
            operation = self.operations.get(field.name)
            if operation is None:
                raise errors.Unimplemented(
                    f'localpfs does not run {_REQUEST_NAMES.get(field.name, field.name)} in a transaction')
            return operation(value) or txn_api.TransactionResponse()
        raise errors.Unknown('unrecognized transaction request type')

    @contextmanager
    def _rolled_back(self, conn) -> Iterator[None]:
        """Run the block in a savepoint and undo whatever it wrote, whether it succeeds or not."""
        conn.execute('SAVEPOINT dry_run')
        try:
            yield
        finally:
            conn.execute('ROLLBACK TO dry_run')
            conn.execute('RELEASE dry_run')

    def _tell_readers(self) -> None:
        # The store's own calls woke waiters and subscribers while the changes were not yet
        # committed; they read the old state and went back to sleep. Now they see the new one.
        self.store.notify_changed()

    @staticmethod
    def _load(conn, txn_id: str) -> txn_api.TransactionInfo:
        row = conn.execute('SELECT info FROM transactions WHERE id = ?', (txn_id,)).fetchone()
        if row is None:
            raise not_found(txn_id)
        return txn_api.TransactionInfo().parse(row[0])


def _now() -> _dt.datetime:
    return _dt.datetime.now(tz=_dt.timezone.utc)
