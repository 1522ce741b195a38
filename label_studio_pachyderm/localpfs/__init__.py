"""localpfs: a local stand-in for pachd's file system API, for development, demos and CI.

It speaks ``pfs_v2.API``, ``transaction_v2.API`` and ``metadata.API/EditMetadata`` (plus
``versionpb_v2.API/GetVersion`` and ``auth_v2.API/WhoAmI``) over real gRPC, so the official ``pachyderm_sdk`` client works against
it unchanged. It is
to pachd what moto is to S3: honest at the protocol level, not a pachd replacement (no
pipelines, no clustering, no object storage).

    from label_studio_pachyderm.localpfs import start_server
    with start_server(port=0, data_dir='/tmp/pfs') as server:
        client = pachyderm_sdk.Client(host=server.host, port=server.port)

Data lives in ``data_dir``: metadata in SQLite (``localpfs.sqlite3``) and file contents
addressed by their sha256 — up to 64 KiB in the same database, larger ones as files under
``blobs/``, streamed to disk while they arrive (memory stays bounded for any file size).
A commit stores only its changes against its parent. A server restarted on the same
directory serves the same projects, repos, branches, commits (open ones stay open) and
files; a second server on a directory in use is refused.

Semantics follow pachd 2.12 (checked against pachyderm's source) in these points:

* Projects: ``default`` always exists; an empty project name means ``default``.
  DeleteProject refuses a project that still has repos, with ``force`` too (FAILED_PRECONDITION
  ``cannot delete project lab: repo lab/a still exists``, one line per repo): pachd never
  deletes repos there. Delete them first (DeleteRepos with the project).
* ``Commit.branch`` is empty in every response (StartCommit, CommitInfo.commit, parent and
  children, BranchInfo.head, FileInfo.file.commit), as pachd leaves it since 2.11. The
  branch a commit was started on is still known here: SubscribeCommit filters on it.
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
  (the sdk sends delete + chunks for an overwriting put), as in pachd. As in pachd, only a
  path ending in ``/`` deletes a directory (``/foo/`` removes everything below it; ``/foo``
  removes the file ``/foo`` only). ``add_file`` from an ``http``/``https`` URL is fetched by
  the server and appended like raw content (status >= 400: UNKNOWN ``error retrieving
  content from "<url>": 404 Not Found``); other schemes (object storage) are UNIMPLEMENTED.
* **Commit validation at finish**, as pachd's: a path that is a file and also has files
  below it (``/foo`` and ``/foo/bar``, in one stream, several, or across commits) finishes
  the commit with the error ``file / directory path collision (/foo/bar)``; the same path
  written under two datum tags in one commit finishes it with ``duplicate path output by
  different datums (/p from a and /p from b)``. FinishCommit (and a one-off ModifyFile)
  still succeeds; InspectCommit shows the error, and branch reads skip the commit. Like
  pachd, each path is compared with the one sorting just before it.
* FinishCommit with ``error`` finishes the commit marked as failed; like pachd, later
  commits are built on the nearest ancestor that finished *without* error, and branch
  reads skip failed commits. DropCommit/DropCommitSet remove a commit without children;
  branches at it move back to its parent (a branch the commit created goes away with it).
* InspectCommit with ``wait`` FINISHED/FINISHING blocks until the commit finishes (or is
  dropped, NOT_FOUND). ListCommit lists newest first (``number``, ``reverse``, ``to``/``from``).
* **SubscribeCommit** streams the repo's commits oldest first: existing ones created after
  ``from`` (not ``from`` itself), then new ones as they appear, until the client cancels.
  ``branch`` keeps commits started on that branch; ``origin_kind`` USER/AUTO keeps that
  kind (``all`` or UNKNOWN: every kind); ``state`` FINISHING/FINISHED holds each commit
  back until it finishes (an open commit holds back the ones after it, as in pachd),
  READY until every commit in its provenance has finished, STARTED not at all. A
  cancelled call frees its thread at once; stopping the server ends open streams with UNAVAILABLE ``the server
  is shutting down`` without waiting for its grace period.
* **Branch provenance** (CreateBranch with ``provenance``), as pachd handles it for commits
  and waits (details in ``provenance.py``): missing provenance branches are created (with a
  finished empty head); an output branch gets an empty AUTO head provenant on its provenance's
  heads, left open for its pipeline as pachd's makeEmptyCommit does; a commit started
  upstream gives every downstream branch an open AUTO commit with the same id (one commit
  set, InspectCommitSet lists them all), which a client finishes (no pipeline does here);
  StartCommit or a one-off write on an output branch is refused (UNKNOWN ``cannot start a
  commit on an output branch: default/out@master``); InspectCommit ``wait`` READY waits for
  the provenance; BranchInfo carries provenance, direct provenance and subvenance;
  WalkCommitProvenance/WalkCommitSubvenance walk the commit edges breadth first from each
  start (picked by id, branch head, ancestor or branch root), leaving the start out, bounded by
  ``max_depth`` and ``max_commits``. Refused as
  in pachd: a repo in its own branch's provenance (also through a cycle), two branches of one
  repo in a DAG.
* SquashCommit/SquashCommitSet remove a commit that has children, folding its changes into
  them (children get its parent; a branch at it moves to its parent); without children:
  UNKNOWN ``cannot squash a commit that has no children as that would cause data loss, use
  the drop operation instead: <repo>@<id>``; for a commit others are provenant on, both
  need ``recursive`` (UNKNOWN ``cannot drop commit (default/raw@<id>) with subvenance
  without recursive``), which takes those commits too. ListCommitSet lists commit sets
  newest first. FindCommits walks back from ``start`` and reports the
  commits whose own changes touch ``file_path``, then the last commit searched (an open
  commit: UNAVAILABLE ``commit <repo>@<id> not finished``). Fsck streams one error per
  broken invariant of the store (a branch or parent pointing nowhere, lost content).
* Files: ListFile lists direct children (directories end with ``/`` and are FileType DIR,
  their size is the total below them, their hash covers their children's hashes in order);
  on a file path it returns that file; on a missing path it returns nothing (as pachd).
  WalkFile returns the directory itself, then everything below it, directories before
  their contents, in path order. GetFileTAR streams a tar of what a path or glob matches
  (each matched directory with everything below it), in path order, names absolute
  (``/d/``, ``/d/a.txt``), headers with only name, size and type set, 512-byte blocks and
  Go's two end blocks, as pachd writes it; ``path_range`` narrows it; nothing matched is
  NOT_FOUND. GlobFile uses pachd's glob (``*`` ``**`` ``?`` ``[..]`` ``{a,b}``) and
  matches directories too. GetFile streams 2 MiB chunks from ``offset``; on
  a directory, or a glob matching several files, it fails as pachd does. DiffFile reads
  every file of both sides, as pachd's Differ does (old defaults to the parent commit), and
  reports added, changed and deleted files and directories. FileInfo.hash is the sha256 of
  the content.
* Errors carry pachd's codes and wording: ``repo default/images not found``, ``branch
  "master" not found in repo default/images``, ``commit default/images@<id> not found``,
  ``file /a.jpg not found in repo default/images at commit <id>``, ``repo ... already
  exists``, ``name (a.b) invalid: only alphanumeric characters, underscores, and dashes are
  allowed``.
* **Transactions** (details in ``transactions.py``), as pachd 2.12 runs them: a CreateRepo,
  CreateBranch, DeleteBranch or FinishCommit sent with the ``pach-transaction`` metadata is
  dry run with the transaction's other requests and recorded (a failing one is refused at
  once, wrapped ``error running request 2 of 2: ...`` with its own code); FinishTransaction
  applies them all in one database transaction or none (the transaction then stays open);
  BatchTransaction does the same without recording. Unknown ids: UNKNOWN ``transactions <id>
  not found``. Open transactions survive a restart. Refused inside a transaction
  (UNIMPLEMENTED): StartCommit, DeleteRepo, SquashCommitSet.
* **Commit metadata** (details in ``metadata.py``), as pachd 2.12 edits it: EditMetadata applies
  its edits (``add_key``, ``edit_key``, ``delete_key``, ``replace``) to commits picked by id, branch
  head, ancestor or branch root, in order, in one database transaction: all are kept or, if any
  fails, none (every failure reported, ``apply edits: edit #<i>: ...``, one per line). ``add_key``
  of an existing key: FAILED_PRECONDITION ``... add_key target key "k" already exists; use edit_key
  instead``; a missing commit, branch or repo: UNKNOWN ``... pick commit: commit ... not found``;
  ``edit_key`` of a missing key adds it, ``delete_key`` of one does nothing, as in pachd. Every
  CommitInfo (InspectCommit, ListCommit, SubscribeCommit, commit sets, walks) carries the map; it
  survives a restart and goes with its commit. Metadata of projects, repos, branches, the cluster
  and pipelines is refused (UNIMPLEMENTED ``localpfs keeps metadata of commits only, not of
  branches (edit #0)``) before anything is applied.
* Auth: started with ``auth_token``, every call but GetVersion needs that token in the
  ``authn-token`` metadata (UNAUTHENTICATED otherwise). Without it, metadata is ignored
  and WhoAmI answers "the auth service is not activated", as pachd does.
* The server enforces pachd's keepalive policy (src/internal/grpcutil/server.go: pings no
  more often than every 5 s, also without a call in flight), so a client pinging every
  10 s keeps its connection.

Not implemented (UNIMPLEMENTED with a message naming the method or the feature):
pipelines, branch triggers, metadata of anything but commits, StartCommit/DeleteRepo/SquashCommitSet
inside a transaction, file sets
(CreateFileSet, AddFileSet, ...), egress, GetFile/GetFileTAR to a URL, ``add_file`` from
object-storage URLs. Accepted without effect, as there is nothing for them to act on
without pipelines: DeleteBranch ``force`` (deleting a branch drops its provenance edges),
Fsck ``fix`` and its zombie checks. Datum tags are recorded only to detect the clash
above; reads show one file per path.
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
