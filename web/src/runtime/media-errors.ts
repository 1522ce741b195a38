/**
 * The labeling screen's reason when a file from Pachyderm cannot be shown.
 *
 * When an image does not load, Label Studio's editor draws its generic box ("There was
 * an issue loading URL from $image value", `data-testid="error:http"`) with an empty
 * "Technical description": the browser's image loader never sees the response body. For
 * its own storages that is all an annotator gets. The storage proxy's answer does say
 * why: a 424 whose JSON `detail` is the plugin's message ("cannot reach pachd at ...",
 * never a token). For a box whose URL is the proxy of a `pfs://` file, this asks the
 * proxy again (one byte, `Range: bytes=0-0`) and writes that reason into the box: a first
 * line in plain words, and the detail as the technical description. When the proxy
 * answers by then, the line says pachd answers again and the task shows the file once it
 * is reloaded (the editor does not retry by itself).
 *
 * Only a line is added and one element's text filled, inside the box the editor drew;
 * a surprise (another Label Studio, no JSON) leaves the box as it was.
 */

import { keepScanning } from "./observe";

export const NOTE_ID = "pachyderm-media-error";
const BOX = '[data-testid="error:http"]';
const RESOLVE_PATH = /^\/(tasks|projects)\/\d+\/resolve\/?$/;

/** The `pfs://` URI a Label Studio proxy URL serves, or null for any other URL. */
export function pfsUriOf(href: string, base: string): string | null {
  let url: URL;
  try {
    url = new URL(href, base);
  } catch {
    return null;
  }
  if (!RESOLVE_PATH.test(url.pathname)) return null;
  const encoded = url.searchParams.get("fileuri");
  if (!encoded) return null;
  try {
    const uri = atob(encoded.replace(/-/g, "+").replace(/_/g, "/"));
    return uri.startsWith("pfs://") ? uri : null;
  } catch {
    return null;
  }
}

/** What the annotator reads first, from the proxy's status and `detail` (null when it served the file). */
export function mediaErrorLine(status: number, detail: string | null): string {
  if (status >= 200 && status < 300) {
    return "Pachyderm answers again: reload the task to see the file.";
  }
  const reason = (detail ?? "").trim();
  if (/cannot reach pachd|no answer within/i.test(reason)) {
    // The first clause names the address; gRPC's own words follow a ";" (they stay in the technical description).
    const short = reason.split(";")[0].trim();
    return `Pachyderm is unreachable: ${short}. The file is still in Pachyderm: reload the task once pachd answers again.`;
  }
  if (reason) return `Pachyderm could not serve this file: ${reason}`;
  return `Pachyderm could not serve this file (the storage proxy answered ${status}).`;
}

type Fetcher = (input: string, init: RequestInit) => Promise<Response>;

async function askProxy(url: string, fetcher: Fetcher): Promise<{ status: number; detail: string | null }> {
  const response = await fetcher(url, { credentials: "same-origin", headers: { Range: "bytes=0-0", Accept: "application/json" } });
  let detail: string | null = null;
  if (!response.ok) {
    try {
      const body = (await response.json()) as { detail?: unknown };
      detail = typeof body?.detail === "string" ? body.detail : null;
    } catch {
      detail = null;
    }
  } else {
    await response.body?.cancel().catch(() => undefined);
  }
  return { status: response.status, detail };
}

/** Writes the reason into one of the editor's error boxes (the proxy of a pfs:// file); false when not one. */
export async function explainMediaError(box: Element, fetcher: Fetcher, base: string): Promise<boolean> {
  // The box also links Label Studio's CORS guide: the file's link is the one to the proxy.
  const href = Array.from(box.querySelectorAll("a[href]"))
    .map((link) => link.getAttribute("href") ?? "")
    .find((candidate) => pfsUriOf(candidate, base) !== null);
  if (!href) return false;
  const { status, detail } = await askProxy(new URL(href, base).href, fetcher);
  const doc = box.ownerDocument;
  let note = box.querySelector<HTMLElement>(`#${NOTE_ID}`);
  if (!note) {
    note = doc.createElement("p");
    note.id = NOTE_ID;
    note.setAttribute("data-testid", NOTE_ID);
    note.setAttribute("role", "alert");
    note.style.fontWeight = "600";
    box.insertBefore(note, box.firstChild);
  }
  note.textContent = mediaErrorLine(status, detail);
  // "Technical description: <code></code>": the editor leaves it empty.
  const code = Array.from(box.querySelectorAll("code")).find((element) => !element.querySelector("a") && !element.textContent);
  if (code && detail) code.textContent = detail;
  return true;
}

/**
 * Explains every such box drawn on the page, for the page's life. A box is explained
 * once (marked with `data-pachyderm-explained`); a new box (the next task) is asked again.
 */
export function watchMediaErrors(doc: Document = document, fetcher: Fetcher = (input, init) => fetch(input, init)): () => void {
  const base = doc.defaultView?.location?.href ?? "http://localhost/";
  const scan = () => {
    for (const box of Array.from(doc.querySelectorAll(BOX))) {
      // Marked once its link to a pfs:// file is there (the editor may fill the box after adding it).
      if (box.hasAttribute("data-pachyderm-explained")) continue;
      const link = Array.from(box.querySelectorAll("a[href]")).some((a) => pfsUriOf(a.getAttribute("href") ?? "", base));
      if (!link) continue;
      box.setAttribute("data-pachyderm-explained", "");
      explainMediaError(box, fetcher, base).catch(() => undefined);
    }
  };
  return keepScanning(doc, scan, { characterData: true });
}
