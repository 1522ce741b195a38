/**
 * The file filter is a regular expression the server applies with Python's `re`
 * (`re.search` on each path). The browser can only compile JavaScript regular
 * expressions, and the two dialects differ, so the rule here is deliberately
 * one-sided: reject a pattern only when it is invalid in both.
 *
 * - Valid in JavaScript: accepted here (the server still checks it with `re`).
 * - Invalid in JavaScript because of Python-only syntax (`(?P<name>...)`,
 *   `(?P=name)`, inline flags such as `(?i)`, `\A`, `\Z`, atomic groups,
 *   possessive quantifiers, conditionals, `(?#comments)`): rewritten to a
 *   JavaScript equivalent for the compile check only. If that compiles, the
 *   pattern is accepted.
 * - Anything else is rejected with the compiler's reason.
 */

/** Rewrites Python-only constructs into JavaScript ones; used only to test compilability. */
export function pythonToJavaScript(pattern: string): string {
  let out = "";
  let inClass = false;
  // True right after an unescaped quantifier, where a "+" makes it possessive.
  let afterQuantifier = false;
  let i = 0;
  // Python allows global inline flags only at the very start, e.g. "(?i)".
  const leadingFlags = /^\(\?[aiLmsux]+\)/.exec(pattern);
  if (leadingFlags) i = leadingFlags[0].length;

  while (i < pattern.length) {
    const char = pattern[i];
    const rest = pattern.slice(i);
    const quantifierBefore = afterQuantifier;
    afterQuantifier = false;
    if (char === "\\") {
      const next = pattern[i + 1] ?? "";
      if (!inClass && next === "A") out += "^";
      else if (!inClass && next === "Z") out += "$";
      else out += char + next;
      i += 2;
      continue;
    }
    if (inClass) {
      if (char === "]") inClass = false;
      out += char;
      i += 1;
      continue;
    }
    if (char === "[") {
      inClass = true;
      out += char;
      // A "]" right after "[" or "[^" is a literal in both dialects.
      if (pattern[i + 1] === "^") {
        out += "^";
        i += 1;
      }
      if (pattern[i + 1] === "]") {
        out += "\\]";
        i += 1;
      }
      i += 1;
      continue;
    }
    const named = /^\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
    if (named) {
      out += `(?<${named[1]}>`;
      i += named[0].length;
      continue;
    }
    const backref = /^\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest);
    if (backref) {
      out += `\\k<${backref[1]}>`;
      i += backref[0].length;
      continue;
    }
    const comment = /^\(\?#[^)]*\)/.exec(rest);
    if (comment) {
      i += comment[0].length;
      continue;
    }
    // Scoped flags "(?i:...)", "(?-i:...)", atomic "(?>...)" and conditionals
    // "(?(1)yes|no)" all become plain non-capturing groups.
    const group = /^\(\?(?:[aiLmsux]*-?[aiLmsux]*:|>|\([A-Za-z0-9_]+\))/.exec(rest);
    if (group) {
      out += "(?:";
      i += group[0].length;
      continue;
    }
    // Possessive quantifiers (Python 3.11+): "a*+", "a++", "a?+", "a{2}+".
    if (char === "+" && quantifierBefore) {
      i += 1;
      continue;
    }
    afterQuantifier = "*+?}".includes(char);
    out += char;
    i += 1;
  }
  return out;
}

function compileError(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // Engines prefix the reason with the pattern ("Invalid regular expression: /x/: Nothing to repeat").
    const reason = message.split(": ").pop() ?? message;
    return reason.charAt(0).toUpperCase() + reason.slice(1);
  }
}

/** Null when the filter may be sent to the server, else what to fix. */
export function regexFilterProblem(pattern: string): string | null {
  if (pattern === "") return null;
  const reason = compileError(pattern);
  if (reason === null) return null;
  const rewritten = pythonToJavaScript(pattern);
  if (rewritten !== pattern && compileError(rewritten) === null) return null;
  if (/^[*?+]/.test(pattern)) {
    return `"${pattern}" looks like a file glob, but this is a regular expression: for example .*\\.jpg$ matches names ending in .jpg (${reason})`;
  }
  return `Invalid regular expression: ${reason}`;
}
