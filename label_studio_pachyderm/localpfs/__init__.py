"""localpfs: a local stand-in for pachd's file system API, for development, demos and CI.

It speaks ``pfs_v2.API`` (plus ``versionpb_v2.API/GetVersion`` and ``auth_v2.API/WhoAmI``)
over real gRPC, so the official ``pachyderm_sdk`` client works against it unchanged. It is
to pachd what moto is to S3: honest at the protocol level, not a pachd replacement (no
pipelines, no provenance, no clustering, no object storage).

    from label_studio_pachyderm.localpfs import start_server
    with start_server(port=0, data_dir='/tmp/pfs') as server:
        client = pachyderm_sdk.Client(host=server.host, port=server.port)

Data lives in ``data_dir``: metadata in SQLite (``localpfs.sqlite3``) and file contents
addressed by their sha256 — up to 64 KiB in the same database, larger ones as files under
``blobs/``, streamed to disk while they arrive (memory stays bounded for any file size).
A commit stores only its changes against its parent. A server restarted on the same
directory serves the same projects, repos, branches, commits (open ones stay open) and
files; a second server on a directory in use is refused.

Semantics follow pachd 2.x (checked against pachyderm's source) in these points:

* Projects: ``default`` always exists; an empty project name means ``default``.
  DeleteProject refuses a project that still has repos unless ``force`` (then deletes them).
* Names of projects, repos and branches: letters, digits, ``_`` and ``-``. Written file
  paths: printable ASCII without glob characters (``*?[]{}!()@+^``) and without ``.``/``..``
  elements, exactly pachd's rule, so nothing is accepted here that pachd would refuse.
* Creating a repo creates no branch. StartCommit on a branch that does not exist creates
  it. CreateBranch without a head gives a new branch an empty, finished commit (pachd's
  "AUTO" commit). DeleteRepo of a repo that does not exist answers ``deleted: false``.
* Commit ids are UUIDs without dashes (``uuid4().hex``). A commit is named by id, or by
  branch (its head), with pachd's ancestry syntax: ``master^``, ``master~2``, ``master.1``.
* StartCommit moves the branch head to the new, open commit at once (as pachd 2.x does).
  **StartCommit on a branch whose head is still open fails** with FAILED_PRECONDITION
  ``parent commit <project>/<repo>@<id> has not been finished`` — pachd's own check (it
  requires a finished parent); nothing is finished implicitly.
* **Open-commit visibility** (the one deliberate difference from pachd, which shows an
  open commit's work-in-progress to anyone reading the branch): *reads that name a branch*
  (GetFile, InspectFile, ListFile, WalkFile, GlobFile, DiffFile, CopyFile sources) show the
  newest commit in the branch's history that finished without error. Files written to an
  open commit are invisible through the branch until FinishCommit. A commit named by id
  shows its own files even while open (only streams that completed count). FileInfos
  report the commit actually read, so a reader can pin that id. InspectBranch and
  InspectCommit(branch) still report the true head, open or not.
* **ModifyFile on a branch**: with an open head it writes into that commit; with a
  finished head (or no branch yet) it writes a new commit on the branch that is started
  and finished when the stream ends, as pachd's one-off writes do. Naming a finished
  commit by id fails with FAILED_PRECONDITION ``commit ... has already finished``. The
  changes of a stream are applied only when it ends cleanly; a stream the client cancels
  or breaks changes nothing. In a stream, ``add_file`` appends and ``delete_file`` clears
  (the sdk sends delete + chunks for an overwriting put), as in pachd.
* FinishCommit with ``error`` finishes the commit marked as failed; like pachd, later
  commits are built on the nearest ancestor that finished *without* error, and branch
  reads skip failed commits. DropCommit/DropCommitSet remove a commit without children;
  branches at it move back to its parent (a branch the commit created goes away with it).
* InspectCommit with ``wait`` FINISHED/FINISHING blocks until the commit finishes (or is
  dropped, NOT_FOUND). ListCommit lists newest first (``number``, ``reverse``, ``to``/``from``).
* Files: ListFile lists direct children (directories end with ``/`` and are FileType DIR,
  their size is the total below them, their hash covers their children's hashes in order);
  on a file path it returns that file; on a missing path it returns nothing (as pachd).
  WalkFile returns the directory itself, then everything below it, directories before
  their contents, in path order. GlobFile uses pachd's glob (``*`` ``**`` ``?`` ``[..]``
  ``{a,b}``) and matches directories too. GetFile streams 2 MiB chunks from ``offset``; on
  a directory, or a glob matching several files, it fails as pachd does. DiffFile walks
  both sides (old defaults to the parent commit) and reports added, changed and deleted
  files and directories. FileInfo.hash is the sha256 of the content.
* Errors carry pachd's codes and wording: ``repo default/images not found``, ``branch
  "master" not found in repo default/images``, ``commit default/images@<id> not found``,
  ``file /a.jpg not found in repo default/images at commit <id>``, ``repo ... already
  exists``, ``name (a.b) invalid: only alphanumeric characters, underscores, and dashes are
  allowed``.
* Auth: started with ``auth_token``, every call but GetVersion needs that token in the
  ``authn-token`` metadata (UNAUTHENTICATED otherwise). Without it, metadata is ignored
  and WhoAmI answers "the auth service is not activated", as pachd does.

Not implemented (UNIMPLEMENTED with a message naming the method): pipelines and
everything about provenance, triggers, transactions, SquashCommit(Set), SubscribeCommit,
FindCommits, GetFileTAR, file sets, egress, URLs as sources or targets, datums. File and
directory name collisions (``/a`` and ``/a/b`` both files) are not detected.
"""
from .server import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    LocalPFS,
    LocalPFSError,
    serve_forever,
    start_server,
)

__all__ = ['LocalPFS', 'LocalPFSError', 'start_server', 'serve_forever',
           'DEFAULT_HOST', 'DEFAULT_PORT', 'DEFAULT_DATA_DIR']
