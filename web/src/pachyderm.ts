/**
 * Pachyderm as a provider of Label Studio's Cloud Storage wizard.
 *
 * Field names are the plugin's REST API names, so the wizard's form data is the
 * request body as is. What the wizard already supplies for every provider is
 * deliberately not repeated here, or it would render twice:
 * - "Storage Title" (`title`) and, for target storages, "Can delete objects from
 *   storage" (`can_delete_objects`);
 * - the import settings step: folder (`prefix`), import method (`use_blob_urls`),
 *   file name filter (`regex_filter`) and "Scan all sub-folders" (`recursive_scan`).
 *   The last three are declared below as hidden fields: that gives them
 *   Pachyderm's defaults (sub-folders are scanned) and a schema, without a second
 *   input. The export folder is a visible field, as for the built-in providers.
 * - "Sync automatically when new commits land" (`watch_commits`) is Pachyderm's
 *   own: a toggle on source storages (the server refuses it with a pinned commit).
 *
 * The wizard validates only the connection step, so the import settings are
 * checked again by the server when the preview loads and when the storage is saved.
 *
 * - "Predictions" (`predictions_repo`, `_branch`, `_path`, `_match`): source storages only, the
 *   last rows of the form. All four stay visible even while the repo is empty: the wizard
 *   validates every field of the step, shown or not, so a field hidden by `visibleWhen` could
 *   hold a value that blocks "Next" with no message in sight. Their descriptions say they apply
 *   only with a predictions repo.
 *
 * There is no pre-signed URL toggle: pachd cannot presign, Label Studio's proxy
 * streams every file. A hidden `presign` field sends an explicit `false`.
 */
import type { ProviderConfig } from "@humansignal/app-common/blocks/StorageProviderForm/types/provider";
import { PachydermIcon } from "./pachyderm/icon";
import {
  authTokenSchema,
  branchSchema,
  changedFilesSchema,
  commitSchema,
  exportFormatsSchema,
  pachdAddressSchema,
  predictionsBranchSchema,
  predictionsMatchSchema,
  predictionsPathSchema,
  predictionsRepoSchema,
  prefixSchema,
  presignSchema,
  projectSchema,
  promoteToSchema,
  recursiveScanSchema,
  regexFilterSchema,
  repoSchema,
  useBlobUrlsSchema,
  watchCommitsSchema,
} from "./pachyderm/schemas";

export const pachydermProvider: ProviderConfig = {
  name: "pachyderm",
  title: "Pachyderm",
  description:
    "Connect a Pachyderm repo over pachd's gRPC API: import files from a branch or a pinned commit, and commit annotations back to a branch",
  icon: PachydermIcon,
  fields: [
    {
      name: "pachd_address",
      type: "text",
      label: "pachd address",
      required: true,
      placeholder: "grpc://localhost:30650",
      description: "host:port, grpc://host:port, or grpcs://host:port for TLS. The default port is 30650.",
      autoComplete: "off",
      schema: pachdAddressSchema,
    },
    {
      name: "auth_token",
      type: "password",
      label: "Auth token",
      placeholder: "Leave empty if auth is not enabled",
      description: "Needed when Pachyderm auth is on, for example a robot token. It is stored on the server and never shown again.",
      autoComplete: "new-password",
      accessKey: true,
      schema: authTokenSchema,
    },
    {
      name: "pach_project",
      type: "text",
      label: "Project",
      placeholder: "default",
      description: "The Pachyderm project that holds the repo.",
      schema: projectSchema,
    },
    {
      name: "repo",
      type: "text",
      label: "Repo",
      required: true,
      placeholder: "images",
      description: "Letters, digits, _ and - only.",
      schema: repoSchema,
    },
    {
      name: "branch",
      type: "text",
      label: "Branch",
      placeholder: "master",
      description: "Source: read on each sync. Target: annotations are committed here; created on the first write if missing.",
      schema: branchSchema,
    },
    {
      name: "commit",
      type: "text",
      label: "Pin to commit (optional)",
      placeholder: "Empty: the head of the branch",
      description: "A commit id (32 hex characters, as pachctl list commit shows it) to import instead of the branch head.",
      autoComplete: "off",
      target: "import",
      schema: commitSchema,
    },
    {
      name: "watch_commits",
      type: "toggle",
      label: "Sync automatically when new commits land",
      description:
        "Each new finished commit on the branch starts the same incremental sync as the Sync button. Not with a pinned commit.",
      target: "import",
      schema: watchCommitsSchema,
    },
    {
      name: "changed_files",
      type: "select",
      label: "When a file changes",
      description:
        "Keep: its task stays on the version it was made from. New version: a new task for the new commit; the old task and its annotations stay, marked superseded.",
      options: [
        { value: "keep", label: "Keep the existing task" },
        { value: "new_version", label: "Make a new task version" },
      ],
      target: "import",
      schema: changedFilesSchema,
    },
    {
      name: "promote_to",
      type: "text",
      label: "Promote to (optional)",
      placeholder: "e.g. master (empty: no labeling rounds)",
      description:
        "Labeling rounds: annotations are committed to the branch above; Promote on the storage card moves this branch, the one pipelines read, to the round's commit in one pachd transaction. Must differ from the branch above.",
      autoComplete: "off",
      target: "export",
      schema: promoteToSchema,
    },
    {
      name: "prefix",
      type: "text",
      label: "Folder in the repo",
      placeholder: "path/to/annotations (empty: the repo root)",
      target: "export",
      schema: prefixSchema,
    },
    {
      name: "export_formats",
      type: "text",
      label: "Also write formats (optional)",
      placeholder: "e.g. COCO, YOLO",
      description:
        "Label Studio export formats, comma-separated, written under <folder>/formats/<FORMAT>/ in the same commit as the JSON: by every sync, and by auto-export at most every few minutes. Images stay where they are, referenced by their pfs:// URIs.",
      autoComplete: "off",
      target: "export",
      schema: exportFormatsSchema,
    },
    {
      name: "predictions_repo",
      type: "text",
      label: "Predictions repo (optional)",
      placeholder: "e.g. detections (empty: no predictions)",
      description:
        "A pipeline's output repo, in the same project. Each sync attaches the prediction file of each task's file as a Label Studio prediction.",
      autoComplete: "off",
      target: "import",
      schema: predictionsRepoSchema,
    },
    {
      name: "predictions_branch",
      type: "text",
      label: "Predictions branch",
      placeholder: "master",
      description: "The predictions repo's branch (usually the pipeline's output branch). Used only with a predictions repo.",
      autoComplete: "off",
      target: "import",
      schema: predictionsBranchSchema,
    },
    {
      name: "predictions_path",
      type: "text",
      label: "Predictions file of a task file",
      placeholder: "{dir}/{stem}.json",
      description:
        "Placeholders {dir}, {stem}, {ext} and {path} of the task's file: cats/1.jpg reads cats/1.json with the default. Used only with a predictions repo.",
      autoComplete: "off",
      target: "import",
      schema: predictionsPathSchema,
    },
    {
      name: "predictions_match",
      type: "select",
      label: "Which predictions commit",
      description:
        "Same commit set: the pipeline's output of exactly the task's commit, so a prediction always matches the bytes the task shows. Branch head: the head of the predictions branch, for predictions a script writes. Used only with a predictions repo.",
      options: [
        { value: "commit_set", label: "The pipeline's output of the task's commit (same commit set)" },
        { value: "branch_head", label: "The head of the predictions branch" },
      ],
      target: "import",
      schema: predictionsMatchSchema,
    },
    // Set on the wizard's import settings step; see the note at the top.
    { name: "regex_filter", type: "hidden", target: "import", schema: regexFilterSchema },
    { name: "use_blob_urls", type: "hidden", target: "import", schema: useBlobUrlsSchema },
    { name: "recursive_scan", type: "hidden", target: "import", schema: recursiveScanSchema },
    { name: "presign", type: "hidden", target: "import", schema: presignSchema },
  ],
  layout: [
    { fields: ["pachd_address"] },
    { fields: ["auth_token"] },
    { fields: ["pach_project", "repo"] },
    // A target storage has no commit field; the row then holds the branch alone.
    { fields: ["branch", "commit"] },
    // Target storages only: the labeling rounds' branch, right under the working branch.
    { fields: ["promote_to"] },
    // prefix is a target storage's field, watch_commits a source storage's: one of them per form.
    { fields: ["prefix", "watch_commits"] },
    { fields: ["export_formats"] },
    { fields: ["changed_files"] },
    // Source storages only: predictions from a pipeline's output repo.
    { fields: ["predictions_repo", "predictions_branch"] },
    { fields: ["predictions_path", "predictions_match"] },
  ],
};

export default pachydermProvider;
