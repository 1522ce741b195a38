/**
 * The folder inside the repo a storage reads from or writes to. Any PFS path is
 * allowed, with or without leading and trailing "/"; the only shapes rejected
 * are the ones that cannot name a folder inside the repo.
 */

export function prefixProblem(prefix: string): string | null {
  if (prefix === "") return null;
  if (/[\u0000-\u001f\u007f]/.test(prefix)) return "The prefix cannot contain tabs or line breaks";
  if (prefix.split("/").includes("..")) {
    return 'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it';
  }
  return null;
}
