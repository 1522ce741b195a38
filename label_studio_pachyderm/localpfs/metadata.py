"""pachd 2.12's metadata API (``metadata.API/EditMetadata``) for commits. ``CommitInfo.metadata`` is
read with the rest of the commit (``Store._commit_rec``).

As pachd 2.12 edits metadata (src/server/metadata/metadata.go and server/api_server.go in pachyderm):

* The edits of one request are tried in order in ONE database transaction; a failing edit does not
  stop the ones after it (each sees what the earlier ones did), but if any failed, none is kept. The
  errors are joined one per line, each ``edit #<i>: ...`` (counted from 0), after ``apply edits: ``.
* ``add_key`` of a key the commit has: ``edit commit "<project>/<repo>.user@<id>": add_key target key
  "<key>" already exists; use edit_key instead``, code FAILED_PRECONDITION (pachd gives that code to
  any message holding "already exists"; every other failure is UNKNOWN, a missing commit too).
* ``edit_key`` sets a key whether or not it exists, ``delete_key`` of a missing key does nothing,
  ``replace`` swaps the whole map, an edit naming a target but no operation changes nothing: pachd
  reports no error for any of these. An edit without a target: ``unknown target <nil>``.
* The commit is named by a ``pfs.CommitPicker`` (by id, branch head, ancestor, branch root; see
  ``pickers.py``); a picker naming nothing here fails as ``pick commit: <why>``.

Only commits carry metadata here. An edit of a project's, repo's, branch's, the cluster's or a
pipeline's metadata is refused before anything is applied (UNIMPLEMENTED naming the target), rather
than accepted and then missing from ProjectInfo/RepoInfo/BranchInfo.

The map is kept in the store's SQLite database (table ``commit_metadata``, one row per key; a
trigger drops a commit's rows with the commit), so a restarted server still shows it.
"""
from __future__ import annotations

import logging

import betterproto
import grpc
from pachyderm_sdk.api import metadata as md_api

from . import errors, pickers
from .errors import PFSError

log = logging.getLogger('label_studio_pachyderm.localpfs')

SERVICE = 'metadata.API'  # the sdk's and pachd's name (api/metadata/metadata.proto, package metadata)

# Targets pachd 2.12 edits that localpfs does not keep metadata for, as a person names them.
_UNKEPT = {'project': 'projects', 'branch': 'branches', 'repo': 'repos', 'cluster': 'the cluster',
           'pipeline': 'pipelines'}


class _EditFailed(Exception):
    """One edit failed; pachd keeps going with the next edit and reports them all."""


class Metadata:
    def __init__(self, store):
        self.store = store

    # -- EditMetadata --------------------------------------------------------------------
    def edit(self, request: md_api.EditMetadataRequest) -> None:
        edits = list(request.edits)
        for number, edit in enumerate(edits):
            target, _ = betterproto.which_one_of(edit, 'target')
            if target in _UNKEPT:
                # refused before the transaction: a half-supported request must not apply in part
                raise errors.Unimplemented(f'localpfs keeps metadata of commits only, not of {_UNKEPT[target]} '
                                           f'(edit #{number})')
        failures = []
        with self.store.db.write() as conn:
            for number, edit in enumerate(edits):
                try:
                    self._apply(conn, edit)
                except _EditFailed as failed:
                    failures.append(f'edit #{number}: {failed}')
            if failures:
                message = 'apply edits: ' + '\n'.join(failures)
                # raised inside the write block: the edits that worked are rolled back with it
                if 'already exists' in message:
                    raise errors.FailedPrecondition(message)
                raise errors.Unknown(message)

    def _apply(self, conn, edit: md_api.Edit) -> None:
        target, picker = betterproto.which_one_of(edit, 'target')
        if target != 'commit':
            raise _EditFailed('unknown target <nil>')  # how Go prints the missing target
        try:
            row, _ = self.store.resolve(conn, pickers.commit(picker))
        except PFSError as err:
            raise _EditFailed(f'pick commit: {err.message}') from None
        key = f'{row.project}/{row.repo}.user@{row.id}'  # pachd's Commit.Key()
        op, value = betterproto.which_one_of(edit, 'op')
        if op == 'add_key':
            if conn.execute('SELECT 1 FROM commit_metadata WHERE commit_seq = ? AND key = ?',
                            (row.seq, value.key)).fetchone():
                raise _EditFailed(f'edit commit {_quoted(key)}: add_key target key {_quoted(value.key)} already '
                                  f'exists; use edit_key instead')
            self._set(conn, row.seq, value.key, value.value)
        elif op == 'edit_key':
            self._set(conn, row.seq, value.key, value.value)
        elif op == 'delete_key':
            conn.execute('DELETE FROM commit_metadata WHERE commit_seq = ? AND key = ?', (row.seq, value.key))
        elif op == 'replace':
            conn.execute('DELETE FROM commit_metadata WHERE commit_seq = ?', (row.seq,))
            conn.executemany('INSERT INTO commit_metadata(commit_seq, key, value) VALUES (?, ?, ?)',
                             [(row.seq, k, v) for k, v in value.replacement.items()])
        # no operation: pachd stores the map unchanged and reports nothing

    @staticmethod
    def _set(conn, seq: int, key: str, value: str) -> None:
        conn.execute('INSERT INTO commit_metadata(commit_seq, key, value) VALUES (?, ?, ?) '
                     'ON CONFLICT(commit_seq, key) DO UPDATE SET value = excluded.value', (seq, key, value))

    # -- gRPC ----------------------------------------------------------------------------
    def EditMetadata(self, request: md_api.EditMetadataRequest, context) -> md_api.EditMetadataResponse:
        try:
            self.edit(request)
        except PFSError as err:
            context.abort(getattr(grpc.StatusCode, err.code), err.message)
        except Exception as exc:  # a bug here must still reach the client as a status
            log.exception('localpfs: EditMetadata failed')
            context.abort(grpc.StatusCode.INTERNAL, f'localpfs: EditMetadata failed: {exc}')
        return md_api.EditMetadataResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            'EditMetadata': grpc.unary_unary_rpc_method_handler(
                self.EditMetadata, request_deserializer=md_api.EditMetadataRequest.FromString,
                response_serializer=bytes)})


def _quoted(text: str) -> str:
    """``text`` as Go's %q writes it, for the characters keys and names hold in practice."""
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n').replace('\t', '\\t') + '"'
