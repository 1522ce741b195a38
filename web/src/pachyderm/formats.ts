/**
 * A target storage's export formats (COCO, YOLO, ...): Label Studio export format names,
 * typed comma-separated (the wizard has no multi-select). The wizard sends the text as it
 * is and the server splits it; an edited storage's field starts from the stored list.
 * Which names the project's labeling config allows only the server knows: it answers
 * with the available ones.
 */

const FORMAT_NAME = /^[A-Z][A-Z0-9_]*$/;

/** The names in `value` (a comma-separated string or a list). */
export function formatNames(value: string | readonly string[]): string[] {
  const parts = typeof value === "string" ? value.split(",") : [...value];
  return parts.map((name) => name.trim()).filter((name) => name !== "");
}

export function exportFormatsProblem(value: string | readonly string[]): string | null {
  const names = formatNames(value);
  const odd = names.find((name) => !FORMAT_NAME.test(name));
  if (odd !== undefined) {
    return `"${odd}" is not a format name: use Label Studio's names, comma-separated, e.g. COCO, YOLO`;
  }
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated !== undefined) return `${repeated} is listed twice`;
  return null;
}
