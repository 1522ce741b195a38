/**
 * A name for the Data Manager's last column.
 *
 * Label Studio 1.23's Data Manager always ends its table with a column of its own
 * (`show-source`): a `{ }` button on each row that opens "Source for task N", the
 * task's data as stored (for a Pachyderm task, its `pfs://` URI). Its header is an
 * empty box, so the column reads as an unlabeled one holding `{ }`. This writes
 * "Source" in that header, with the button's own words as its tooltip.
 *
 * One element is added inside the empty box React drew (React never gives that box
 * children, so it leaves it alone); nothing else changes.
 */

import { keepScanning } from "./observe";

export const HEADER_CELL = ".lsf-th.lsf-show-source";
export const LABEL_ID = "pachyderm-source-column";
export const TEXTS = {
  label: "Source",
  tooltip: "View Task Source: the task's data as stored, e.g. the pfs:// URI of its file",
} as const;

/** Names the column's header cells under `root`; returns how many it named now. */
export function nameSourceColumn(root: ParentNode): number {
  let named = 0;
  for (const cell of Array.from(root.querySelectorAll<HTMLElement>(HEADER_CELL))) {
    const box = cell.firstElementChild as HTMLElement | null;
    if (!box || box.querySelector(`[data-testid="${LABEL_ID}"]`) || (box.textContent ?? "").trim() !== "") continue;
    const label = cell.ownerDocument.createElement("span");
    label.setAttribute("data-testid", LABEL_ID);
    label.textContent = TEXTS.label;
    // As tall as the other headers (22 px of text, 10 px above and below), so it reads level with them.
    label.style.cssText = "display:block;width:100%;text-align:center;font-size:12px;font-weight:500;line-height:22px;padding:10px 0";
    box.appendChild(label);
    cell.setAttribute("title", TEXTS.tooltip);
    named += 1;
  }
  return named;
}

/** Keeps the column named on this page, for the page's life (the table is drawn again on every tab). */
export function watchSourceColumn(doc: Document = document): () => void {
  return keepScanning(doc, () => void nameSourceColumn(doc));
}
