/**
 * Commit ids for pinning a source storage.
 *
 * A pachd commit id is a UUIDv4 written without dashes: 32 lowercase hex
 * characters whose 13th is always "4". pachd tells commits from branches by
 * exactly that shape, so anything else would be looked up as a branch and fail
 * far from here. Only ids are accepted: no branch names, no ancestry such as
 * `master^1` (the storage's Branch field covers branches).
 */

const COMMIT_ID = /^[0-9a-f]{12}4[0-9a-f]{19}$/;

export const COMMIT_ID_LENGTH = 32;

export function isCommitIdShape(value: string): boolean {
  return COMMIT_ID.test(value);
}

export function commitIdProblem(value: string): string | null {
  if (value === "" || COMMIT_ID.test(value)) return null;
  if (/\s/.test(value)) return "Remove the spaces or line breaks from the commit id";
  if (/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/.test(value)) {
    return "Remove the dashes: Pachyderm writes commit ids as 32 characters without dashes";
  }
  if (/[~^]/.test(value) || /[g-zG-Z_-]/.test(value)) {
    return "Enter a commit id (32 hex characters, as pachctl list commit shows it). Branch names and ancestry such as master^1 are not accepted here; use the Branch field for a branch";
  }
  if (!/^[0-9a-fA-F]+$/.test(value)) {
    return "A commit id contains only the hex characters 0-9 and a-f";
  }
  if (value.length !== COMMIT_ID_LENGTH) {
    return `A commit id has ${COMMIT_ID_LENGTH} hex characters; this one has ${value.length}`;
  }
  if (COMMIT_ID.test(value.toLowerCase())) {
    return "Write the commit id in lowercase, as pachctl shows it";
  }
  return 'This is not a Pachyderm commit id: the 13th character of every commit id is "4"';
}
