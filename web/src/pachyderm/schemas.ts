/**
 * One Zod schema per storage field, built on the rule modules next to this file.
 *
 * How the wizard uses them shapes how they are written:
 * - it only validates (it never sends the parsed output), so schemas check and
 *   never transform;
 * - `.default()` is where the wizard takes a field's initial value from, and a
 *   schema with a default or `.optional()` is what makes a field optional;
 * - for a required field the wizard adds its own "<label> is required" check only
 *   to plain string schemas, so required schemas here carry their own message for
 *   empty and missing values.
 */
import { z } from "zod";
import { pachdAddressProblem } from "./address";
import { commitIdProblem } from "./commit";
import { exportFormatsProblem } from "./formats";
import { DEFAULT_PROJECT, branchNameProblem, projectNameProblem, repoNameProblem } from "./names";
import {
  DEFAULT_PREDICTIONS_PATH,
  PREDICTIONS_MATCHES,
  predictionsNameProblem,
  predictionsPathProblem,
} from "./predictions";
import { prefixProblem } from "./prefix";
import { regexFilterProblem } from "./regex";
import { authTokenProblem } from "./token";

export const DEFAULT_BRANCH = "master";

type Rule = (value: string) => string | null;

function checkedText(rule: Rule) {
  return z.string({ invalid_type_error: "Expected text" }).superRefine((value, ctx) => {
    const problem = rule(value);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });
}

function requiredText(missing: string, rule: Rule) {
  return z.string({ required_error: missing, invalid_type_error: missing }).superRefine((value, ctx) => {
    const problem = value.trim() === "" ? missing : rule(value);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });
}

export const pachdAddressSchema = requiredText(
  "Enter the pachd address, for example grpc://localhost:30650",
  pachdAddressProblem,
);
export const authTokenSchema = checkedText(authTokenProblem).optional().default("");
export const projectSchema = checkedText(projectNameProblem).default(DEFAULT_PROJECT);
export const repoSchema = requiredText("Enter the name of the Pachyderm repo", repoNameProblem);
export const branchSchema = checkedText(branchNameProblem).default(DEFAULT_BRANCH);
export const commitSchema = checkedText(commitIdProblem).optional().default("");
export const prefixSchema = checkedText(prefixProblem).optional().default("");
export const regexFilterSchema = checkedText(regexFilterProblem).optional().default("");
// Label Studio's meaning: on, every file is one task (media); off, files hold task JSON.
export const useBlobUrlsSchema = z.boolean().default(false);
export const recursiveScanSchema = z.boolean().default(true);
// Source storages: each new finished commit on the branch starts a sync (off by default).
export const watchCommitsSchema = z.boolean().default(false);
// Source storages: what a sync does with a file that changed since the last one.
export const CHANGED_FILES = ["keep", "new_version"] as const;
export const changedFilesSchema = z.enum(CHANGED_FILES).default("keep");
// Target storages: export formats, comma-separated text (or the stored list when editing).
export const exportFormatsSchema = z
  .union([z.string(), z.array(z.string())], { invalid_type_error: "Expected format names, e.g. COCO, YOLO" })
  .superRefine((value, ctx) => {
    const problem = exportFormatsProblem(value);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  })
  .optional()
  .default("");
// Target storages: the branch a labeling round is promoted to (empty: no rounds). The server also
// checks it differs from the working branch; a single field's schema cannot see the other field.
export function promoteToProblem(name: string): string | null {
  if (name === "" || /^[a-zA-Z0-9_-]+$/.test(name)) return null;
  return `"${name}" is not a branch name: letters, digits, "_" and "-" only (e.g. master)`;
}
export const promoteToSchema = checkedText(promoteToProblem).optional().default("");
// pachd has no presigned URLs; Label Studio's proxy streams every file.
export const presignSchema = z.boolean().default(false);
// Source storages: predictions from a pipeline's output repo (empty repo: no predictions). The
// server checks the path only when the repo is set; a single field's schema cannot see the repo,
// so the path is checked always (its default passes).
export const predictionsRepoSchema = checkedText((name) => predictionsNameProblem("repo", name))
  .optional()
  .default("");
export const predictionsBranchSchema = checkedText((name) => predictionsNameProblem("branch", name)).default(
  DEFAULT_BRANCH,
);
export const predictionsPathSchema = checkedText(predictionsPathProblem).default(DEFAULT_PREDICTIONS_PATH);
// Empty (a storage saved before the field existed, opened for editing) means the default.
export const predictionsMatchSchema = z.preprocess(
  (value) => (value === "" || value === null ? undefined : value),
  z.enum(PREDICTIONS_MATCHES).default("commit_set"),
);
