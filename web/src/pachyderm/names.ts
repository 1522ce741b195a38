/**
 * Pachyderm's naming rules for projects, repos and branches, as pachd enforces them:
 * - every name: only ASCII letters, digits, "_" and "-" (pachd's ancestry rules,
 *   which keep names unambiguous next to `^`, `~` and `.` ancestry syntax);
 * - projects: "default" is always valid; others are at most 51 characters
 *   (Kubernetes' 63, minus room for pipeline suffixes) and start with a letter or digit;
 * - branches: cannot have the shape of a commit id (a UUIDv4 without dashes),
 *   because pachd reads such a string as a commit, never as a branch.
 *
 * Each function returns a message a person can act on, or null when the name is fine.
 */
import { isCommitIdShape } from "./commit";

export const DEFAULT_PROJECT = "default";
export const PROJECT_NAME_MAX = 51;

const NAME = /^[A-Za-z0-9_-]+$/;

function describe(char: string): string {
  if (char === " ") return "spaces";
  if (/\s/.test(char)) return "tabs or line breaks";
  return `"${char}"`;
}

/** Lists the distinct characters a name may not contain, for the message. */
function badCharacters(name: string): string {
  const seen = [...new Set([...name].filter((char) => !/[A-Za-z0-9_-]/.test(char)))];
  return seen.map(describe).join(", ");
}

function charsetProblem(kind: string, name: string): string | null {
  if (NAME.test(name)) return null;
  return `${kind} names may only contain letters, digits, "_" and "-" (found ${badCharacters(name)})`;
}

export function projectNameProblem(name: string): string | null {
  if (name === "" || name === DEFAULT_PROJECT) return null;
  const charset = charsetProblem("Project", name);
  if (charset) return charset;
  if (name.length > PROJECT_NAME_MAX) {
    return `Project names are at most ${PROJECT_NAME_MAX} characters; this one has ${name.length}`;
  }
  if (!/^[A-Za-z0-9]/.test(name)) return "Project names must start with a letter or a digit";
  return null;
}

export function repoNameProblem(name: string): string | null {
  if (name.includes("/")) {
    return 'Enter only the repo name; the part before "/" goes in the Project field';
  }
  if (name.includes("@")) {
    return 'Enter only the repo name; the part after "@" goes in the Branch (or Commit) field';
  }
  return charsetProblem("Repo", name);
}

export function branchNameProblem(name: string): string | null {
  if (name === "") return null;
  if (/[~^]/.test(name)) {
    return "Enter a plain branch name; ancestry such as master^1 is not supported here";
  }
  const charset = charsetProblem("Branch", name);
  if (charset) return charset;
  if (isCommitIdShape(name)) {
    return "This is a commit id, not a branch name: pachd never reads it as a branch. To pin a commit, use the Commit field of a source storage";
  }
  return null;
}
