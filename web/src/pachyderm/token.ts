/**
 * Pachyderm auth tokens are opaque strings, so only one mistake is caught:
 * whitespace, which a copy from a terminal brings along and which pachd would
 * reject as a wrong token. The wizard's mask for a stored secret is not
 * whitespace, so an unchanged field passes.
 */

export function authTokenProblem(token: string): string | null {
  if (/\s/.test(token)) return "Remove the spaces or line breaks from the token";
  return null;
}
