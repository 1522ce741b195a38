/**
 * Predictions from a pipeline's output repo (source storages): the path template that names a
 * task file's prediction file, checked by the same rules as the server (`template_problem` in
 * `label_studio_pachyderm/imports/predictions.py`), so the form shows the problem before saving.
 *
 * The template is a Python format string: `{{` and `}}` are literal braces, a field is
 * `{name}`. Only `{dir}`, `{stem}`, `{ext}` and `{path}` are known, with no format spec or
 * conversion; at least one is needed; no ".." path element may appear in the literal text.
 */

export const PREDICTION_PLACEHOLDERS = ["dir", "stem", "ext", "path"] as const;
export const DEFAULT_PREDICTIONS_PATH = "{dir}/{stem}.json";
export const PREDICTIONS_MATCHES = ["commit_set", "branch_head"] as const;

interface Part {
  literal: string;
  /** null for a literal-only part. */
  name: string | null;
  spec: string;
  conversion: string | null;
}

/** Python's `string.Formatter().parse`, enough to check a template; throws Python's messages. */
export function parseTemplate(template: string): Part[] {
  const parts: Part[] = [];
  let literal = "";
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if (c === "}") {
      if (template[i + 1] !== "}") throw new Error("Single '}' encountered in format string");
      literal += "}";
      i += 2;
      continue;
    }
    if (c !== "{") {
      literal += c;
      i += 1;
      continue;
    }
    if (template[i + 1] === "{") {
      literal += "{";
      i += 2;
      continue;
    }
    if (i + 1 >= template.length) throw new Error("Single '{' encountered in format string");
    // The field runs to the matching "}" (a format spec may nest braces).
    let depth = 1;
    let j = i + 1;
    for (; j < template.length; j++) {
      if (template[j] === "{") depth += 1;
      else if (template[j] === "}" && --depth === 0) break;
    }
    if (depth !== 0) throw new Error("expected '}' before end of string");
    parts.push({ literal, ...parseField(template.slice(i + 1, j)) });
    literal = "";
    i = j + 1;
  }
  if (literal !== "") parts.push({ literal, name: null, spec: "", conversion: null });
  return parts;
}

function parseField(field: string): Omit<Part, "literal"> {
  let k = 0;
  for (; k < field.length; k++) {
    const c = field[k];
    if (c === "{") throw new Error("unexpected '{' in field name");
    if (c === "[") {
      while (k < field.length && field[k] !== "]") k++;
      if (k >= field.length) break;
      continue;
    }
    if (c === ":" || c === "!") break;
  }
  const name = field.slice(0, k);
  if (k >= field.length) return { name, spec: "", conversion: null };
  if (field[k] === ":") return { name, spec: field.slice(k + 1), conversion: null };
  if (k + 1 >= field.length) throw new Error("end of string while looking for conversion specifier");
  const conversion = field[k + 1];
  if (k + 2 < field.length && field[k + 2] !== ":") throw new Error("expected ':' after conversion specifier");
  return { name, spec: field.slice(k + 3), conversion };
}

/** The prediction file of a task file (repo-relative); "" when the template names no file. */
export function predictionPath(template: string, path: string): string {
  const file = path.replace(/^\/+/, "");
  const slash = file.lastIndexOf("/");
  const dir = slash < 0 ? "" : file.slice(0, slash).replace(/\/+$/, "") || file.slice(0, slash);
  const name = file.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  const hasExt = dot > 0 && name.slice(0, dot).replace(/\./g, "") !== "";
  const stem = hasExt ? name.slice(0, dot) : name;
  const ext = hasExt ? name.slice(dot + 1) : "";
  const values: Record<string, string> = { dir, stem, ext, path: file };
  const filled = parseTemplate(template)
    .map((part) => part.literal + (part.name === null ? "" : values[part.name] ?? ""))
    .join("");
  const kept: string[] = [];
  for (const element of filled.split("/")) {
    if (element === "" || element === ".") continue;
    if (element === "..") kept.pop();
    else kept.push(element);
  }
  return kept.join("/");
}

const KNOWN = PREDICTION_PLACEHOLDERS.map((name) => `{${name}}`).join(", ");

/** Why `template` cannot name a prediction file (null when it can). */
export function predictionsPathProblem(template: string): string | null {
  // Empty means the default, as on the server (a storage saved before the field existed has none).
  if (template.trim() === "") return null;
  let parts: Part[];
  try {
    parts = parseTemplate(template);
  } catch (error) {
    return `"${template}" is not a path template: ${(error as Error).message}`;
  }
  const fields = parts.filter((part) => part.name !== null);
  const unknown = fields.find((part) => !(PREDICTION_PLACEHOLDERS as readonly string[]).includes(part.name as string));
  if (unknown) return `Unknown placeholder {${unknown.name}}: use ${KNOWN}`;
  if (fields.some((part) => part.spec !== "" || part.conversion !== null)) {
    return "Placeholders take no format spec or conversion: write {stem}, not {stem:>8} or {stem!r}";
  }
  if (fields.length === 0) {
    return `Use at least one placeholder (${KNOWN}), else every task reads the same file`;
  }
  const literal = parts.map((part) => part.literal).join("");
  if (literal.replace(/\\/g, "/").split("/").includes("..")) {
    return 'The path must stay inside the predictions repo: no ".." path elements';
  }
  if (predictionPath(template, "a/b.png") === "") return "The template names no file";
  return null;
}

/** Predictions repo (empty: no predictions) and branch: letters, digits, "_" and "-". */
export function predictionsNameProblem(kind: "repo" | "branch", name: string): string | null {
  if (name === "" || /^[a-zA-Z0-9_-]+$/.test(name)) return null;
  return `"${name}" is not a ${kind} name: letters, digits, "_" and "-" only`;
}
