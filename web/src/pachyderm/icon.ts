/**
 * The Pachyderm tile icon: an original, simple elephant-head mark (not any
 * vendor's logo). The shapes are data so the same drawing feeds the React
 * component here and the standalone SVG file the build writes next to the
 * browser script.
 *
 * Written with `createElement` rather than JSX so this file is plain `.ts` and
 * builds unchanged inside Label Studio's source tree and in our bundle (where
 * "react" resolves to a small shim; see src/runtime/react-shim.ts).
 */
import { createElement } from "react";

export interface IconShape {
  tag: "path" | "circle";
  attrs: Record<string, string | number>;
}

export const ICON_VIEWBOX = "0 0 48 48";

const BODY = "#5B6CFF";
const EAR = "#3A46C4";
const EYE = "#FFFFFF";

export const ICON_SHAPES: IconShape[] = [
  // Ear, behind the head.
  { tag: "path", attrs: { d: "M21 9C11 6 3 13 4 23c.6 7 6 11 13 9.5L21 9z", fill: EAR } },
  // Head.
  { tag: "circle", attrs: { cx: 26, cy: 20, r: 13, fill: BODY } },
  // Trunk, curling forward at the tip.
  {
    tag: "path",
    attrs: {
      d: "M33 26c3 7 2 13 7 16 2.5 1.5 5-.5 4-3",
      fill: "none",
      stroke: BODY,
      "stroke-width": 6,
      "stroke-linecap": "round",
    },
  },
  // Eye.
  { tag: "circle", attrs: { cx: 30, cy: 16, r: 2.2, fill: EYE } },
];

/** React wants camelCase for SVG presentation attributes. */
function reactProps(attrs: IconShape["attrs"]): Record<string, string | number> {
  return Object.fromEntries(
    Object.entries(attrs).map(([name, value]) => [name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), value]),
  );
}

export function PachydermIcon({ className }: { className?: string }) {
  return createElement(
    "svg",
    {
      xmlns: "http://www.w3.org/2000/svg",
      viewBox: ICON_VIEWBOX,
      width: 32,
      height: 32,
      className,
      role: "img",
      "aria-label": "Pachyderm",
    },
    ...ICON_SHAPES.map((shape, index) => createElement(shape.tag, { key: index, ...reactProps(shape.attrs) })),
  );
}

/** The same drawing as a standalone SVG document. */
export function iconSvgDocument(): string {
  const body = ICON_SHAPES.map(
    (shape) =>
      `  <${shape.tag} ${Object.entries(shape.attrs)
        .map(([name, value]) => `${name}="${value}"`)
        .join(" ")}/>`,
  ).join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${ICON_VIEWBOX}" width="48" height="48" role="img" aria-label="Pachyderm">\n${body}\n</svg>\n`;
}
