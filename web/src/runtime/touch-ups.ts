/**
 * Pachyderm's words in the parts of the storage wizard Label Studio draws itself.
 *
 * A provider config names its fields, placeholders and description; the wizard's
 * header, its import settings step and its review step are Label Studio's own and
 * speak of buckets and every provider's file types. While a wizard has Pachyderm
 * selected, this corrects what would mislead there:
 * - a target storage's header subtitle ("Import your data from cloud storage providers");
 * - a target storage's repo placeholder: `labels` (the field's `images` is a source's);
 * - the import settings step's "Bucket Prefix (optional)", "... within your bucket ..."
 *   and its placeholder: a path prefix in the repo's branch (or pinned commit);
 * - the review step's "Storage Location", which Label Studio reads from `bucket` or
 *   `container` ("Not specified"): `project/repo@branch:/prefix`;
 * - Parquet on the import settings step: Pachyderm task files are .json/.jsonl, so the
 *   "Parquet" and "All Tasks Files" filter links are hidden and the method's label and
 *   the filter's placeholder stop offering it;
 * - the preview: a warning when Import Method is "Tasks" but listed files are not
 *   .json/.jsonl, naming the method that fits ("Files"); each file's time, which is its
 *   commit's ("in commit 8bd680df, finished 2 minutes ago"), not the file's own.
 *
 * In edit mode it also empties the auth token field of a storage that has no token
 * (Label Studio masks it regardless: see `clearMaskOfUnsetToken` in ./wizard).
 *
 * Only text, attributes and one added element change, never a node React rendered
 * is removed; everything is put back when another provider is selected. Label Studio
 * re-renders those texts only when their own inputs change, which for these they do not.
 */
import { fiberOfNode, hooksOf } from "./react-internals";
import { clearMaskOfUnsetToken, findWizardBelow, formStateOf } from "./wizard";

export const PROVIDER = "pachyderm";
const TASK_FILE = /\.(json|jsonl)$/i;
const WARNING_ID = "pachyderm-preview-warning";

export interface WizardView {
  provider: string;
  target: "import" | "export";
  formData: Record<string, unknown>;
  /** The preview's file keys, null until a preview is loaded (a null key: "limit reached"). */
  previewKeys: (string | null)[] | null;
  /** The preview's files as the server listed them (same order as `previewKeys`). */
  previewFiles?: PreviewFile[] | null;
}

export interface PreviewFile {
  key: string | null;
  commit?: string | null;
  last_modified?: string | null;
}

/**
 * The preview's words for a file's time. Label Studio prints `last_modified` as "2 minutes
 * ago", as if the file had changed then; pachd gives every file of a listing the listed
 * commit's finishing time (FileInfo.committed), not the time the file itself last changed.
 * So the row says no more than that: "in commit 8bd680df, finished 2 minutes ago".
 */
export function previewTime(commit: string, drawn: string): string {
  return `in commit ${commit.slice(0, 8)}, finished ${drawn}`;
}

export const TEXTS = {
  targetSubtitle: "Commit annotations to a branch of a Pachyderm repo",
  targetRepoPlaceholder: "labels",
  tasksOption: "Tasks - Treat each JSON or JSONL file as one or more task definitions",
  tasksPlaceholder: ".*\\.(json|jsonl)$ - imports task definitions",
  prefixLabel: "Path prefix in the repo (optional)",
  prefixPlaceholder: "path/in/the/repo/ (empty: the whole repo)",
} as const;

/** What the import settings step says of the prefix: where in the repo the files are read. */
export function prefixDescription(formData: Record<string, unknown>): string {
  const location = storageLocation({ ...formData, prefix: "" }).replace(/:\/$/, "");
  return `The path in ${location} whose files are imported, e.g. cats/ (empty: the whole repo)`;
}

/** Label Studio 1.23's own wording, as rendered. */
const LS_TEXTS = {
  subtitle: "Import your data from cloud storage providers",
  tasksOption: "Tasks - Treat each JSON, JSONL, or Parquet as one or more task definitions per file",
  notSpecified: "Not specified",
  storageLocation: "Storage Location",
  parquetLinks: ["Parquet", "All Tasks Files"],
  prefixLabel: "Bucket Prefix (optional)",
  prefixDescription: "Specify the folder path within your bucket where your files are located",
  prefixPlaceholder: "path/to/files/ or leave empty for root",
} as const;

/** `project/repo@branch:/prefix`, as the plugin names a storage's place everywhere else. */
export function storageLocation(formData: Record<string, unknown>): string {
  const text = (name: string, fallback: string) => {
    const value = formData[name];
    return typeof value === "string" && value.trim() !== "" ? value.trim() : fallback;
  };
  const prefix = text("prefix", "").replace(/^\/+/, "");
  const commit = text("commit", "");
  return `${text("pach_project", "default")}/${text("repo", "?")}@${commit || text("branch", "master")}:/${prefix}`;
}

/** The warning for a preview of files that cannot be task files, or null when none is due. */
export function previewWarning(view: WizardView): string | null {
  if (view.target !== "import" || view.formData.use_blob_urls || !view.previewKeys) return null;
  const keys = view.previewKeys.filter((key): key is string => typeof key === "string");
  const media = keys.filter((key) => !TASK_FILE.test(key));
  if (media.length === 0) return null;
  const which =
    media.length === keys.length
      ? "None of the listed files is a task file (.json or .jsonl)"
      : `${media.length} of the ${keys.length} listed files are not task files (.json or .jsonl)`;
  return (
    `${which}: with Import Method "Tasks" a sync skips them and reports each in the storage's errors. ` +
    'For one task per file (images, audio, video, text), choose Import Method "Files".'
  );
}

// Original values of what was changed, to put back.
const originalText = new WeakMap<Text, string>();
const originalAttr = new WeakMap<Element, Map<string, string | null>>();
// Elements hidden, with their style attribute before.
const hidden = new Map<HTMLElement, string | null>();

function setText(node: Text, value: string): void {
  if (!originalText.has(node)) originalText.set(node, node.nodeValue ?? "");
  if (node.nodeValue !== value) node.nodeValue = value;
}

function setAttr(element: Element, name: string, value: string): void {
  let saved = originalAttr.get(element);
  if (!saved) originalAttr.set(element, (saved = new Map()));
  if (!saved.has(name)) saved.set(name, element.getAttribute(name));
  if (element.getAttribute(name) !== value) element.setAttribute(name, value);
}

function textNodes(root: Element): Text[] {
  const walker = root.ownerDocument.createTreeWalker(root, 4 /* NodeFilter.SHOW_TEXT */);
  const nodes: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) nodes.push(node as Text);
  return nodes;
}

/** Puts back everything changed under `root` (another provider is selected, or no wizard). */
export function undoTouchUps(root: Element): void {
  for (const node of textNodes(root)) {
    const original = originalText.get(node);
    if (original !== undefined && node.nodeValue !== original) node.nodeValue = original;
  }
  for (const element of Array.from(root.querySelectorAll("[placeholder], [title], [style]"))) {
    const saved = originalAttr.get(element);
    saved?.forEach((value, name) => (value === null ? element.removeAttribute(name) : element.setAttribute(name, value)));
  }
  for (const [element, style] of Array.from(hidden)) {
    if (!element.isConnected) hidden.delete(element);
    if (!root.contains(element)) continue;
    if (style === null) element.removeAttribute("style");
    else element.setAttribute("style", style);
    hidden.delete(element);
  }
  root.querySelector(`#${WARNING_ID}`)?.remove();
}

/** Applies the corrections above to a wizard rendered under `root`, showing `view`. */
export function applyTouchUps(root: Element, view: WizardView): void {
  if (view.provider !== PROVIDER) {
    undoTouchUps(root);
    return;
  }
  const nodes = textNodes(root);
  for (const node of nodes) {
    const value = node.nodeValue?.trim();
    if (view.target === "export" && value === LS_TEXTS.subtitle) setText(node, TEXTS.targetSubtitle);
    if (value === LS_TEXTS.tasksOption) setText(node, TEXTS.tasksOption);
    if (view.target === "import") {
      // Compared with what Label Studio drew (kept by setText), so a changed repo or branch updates the words.
      const drawn = (originalText.get(node) ?? node.nodeValue ?? "").trim();
      if (drawn === LS_TEXTS.prefixLabel) setText(node, TEXTS.prefixLabel);
      if (drawn === LS_TEXTS.prefixDescription) setText(node, prefixDescription(view.formData));
    }
    if (value === LS_TEXTS.storageLocation) {
      // The value is the next element of the label's parent: <div><p>Storage Location</p><p>value</p></div>
      const valueNode = node.parentElement?.nextElementSibling?.firstChild;
      if (valueNode && valueNode.nodeType === 3 && valueNode.nodeValue === LS_TEXTS.notSpecified) {
        setText(valueNode as Text, storageLocation(view.formData));
      }
    }
  }
  if (view.target === "export") {
    const repo = root.querySelector('input[name="repo"]');
    if (repo) setAttr(repo, "placeholder", TEXTS.targetRepoPlaceholder);
  }
  const prefix = root.querySelector('input[name="prefix"]');
  if (view.target === "import" && prefix?.getAttribute("placeholder") === LS_TEXTS.prefixPlaceholder) {
    setAttr(prefix, "placeholder", TEXTS.prefixPlaceholder);
  }
  const filter = root.querySelector('input[name="regex_filter"]');
  if (filter && /parquet/i.test(filter.getAttribute("placeholder") ?? "")) setAttr(filter, "placeholder", TEXTS.tasksPlaceholder);
  for (const button of Array.from(root.querySelectorAll<HTMLElement>('button[type="button"]'))) {
    if ((LS_TEXTS.parquetLinks as readonly string[]).includes(button.textContent?.trim() ?? "") && button.style.display !== "none") {
      if (!hidden.has(button)) hidden.set(button, button.getAttribute("style"));
      button.style.display = "none";
    }
  }
  showPreviewWarning(root, previewWarning(view));
  if (view.target === "import" && view.previewFiles) nameCommitTimes(root, view.previewFiles);
}

/** Each preview row's time, named as its commit's (see `previewTime`). */
function nameCommitTimes(root: Element, files: PreviewFile[]): void {
  // Each row ends "<time> • <size>": the "•" separators, in row order, lead to the time before them.
  const separators = Array.from(root.querySelectorAll("span")).filter((span) => span.textContent === "•");
  if (separators.length !== files.length) return;
  separators.forEach((separator, index) => {
    const commit = files[index]?.commit;
    const time = separator.previousElementSibling;
    const node = time?.firstChild;
    if (!commit || !time || !node || node.nodeType !== 3) return;
    const current = node.nodeValue ?? "";
    // React writes its own words again when it redraws the row ("3 minutes ago"): name those.
    if (current === "" || current.startsWith("in commit ")) return;
    setText(node as Text, previewTime(commit, current));
    setAttr(time, "title", `Commit ${commit}: pachd gives each file of a commit the commit's finishing time`);
    // Longer than LS's words: let them wrap, so the file's name keeps its room.
    setAttr(time, "style", "white-space:normal;text-align:right");
  });
}

function showPreviewWarning(root: Element, message: string | null): void {
  let box = root.querySelector<HTMLElement>(`#${WARNING_ID}`);
  if (!message) {
    box?.remove();
    return;
  }
  // Under the preview step's heading ("Configure Import Settings & Preview Data"): a
  // wrapper of two static elements, where React never inserts anything.
  const heading = Array.from(root.querySelectorAll("h2")).find((h2) => /Import Settings/.test(h2.textContent ?? ""));
  const place = heading?.parentElement;
  if (!place) return;
  if (!box) {
    box = root.ownerDocument.createElement("div");
    box.id = WARNING_ID;
    box.setAttribute("role", "alert");
    box.setAttribute("data-testid", WARNING_ID);
    box.style.cssText =
      "margin-top:12px;padding:8px 12px;border:1px solid #e8a33d;border-radius:4px;background:#fff7e6;color:#5c3b00;font-size:14px";
  }
  if (box.parentElement !== place) place.appendChild(box);
  if (box.textContent !== message) box.textContent = message;
}

/** What a wizard under `root` shows, read from its React state; null when there is none. */
export function readWizard(root: Element): WizardView | null {
  const fiber = fiberOfNode(root);
  const wizard = fiber ? findWizardBelow(fiber) : null;
  if (!wizard) return null;
  const state = formStateOf(wizard);
  if (!state) return null;
  const formData = (state.formData ?? {}) as Record<string, unknown>;
  const props = wizard.fiber.memoizedProps as Record<string, unknown> | null;
  const target = props?.target === "export" ? "export" : "import";
  let previewKeys: (string | null)[] | null = null;
  let previewFiles: PreviewFile[] | null = null;
  for (const hook of hooksOf(wizard.fiber)) {
    const value = hook.queue?.lastRenderedState ?? hook.memoizedState;
    if (Array.isArray(value) && value.length > 0 && value.every((item) => item && typeof item === "object" && "key" in item)) {
      previewFiles = value as PreviewFile[];
      previewKeys = previewFiles.map((item) => item.key);
      break;
    }
  }
  return { provider: String(formData.provider ?? ""), target, formData, previewKeys, previewFiles };
}

/**
 * Keeps the corrections applied in every storage wizard of the page, for the page's
 * life: one pass per animation frame with changes, only over body children (portals)
 * that hold a wizard. Any surprise stops it quietly: these are words, not function.
 */
export function watchWizards(doc: Document = document): () => void {
  const known = new Set<Element>();
  let scheduled = false;
  const signature = '[data-testid^="storage-provider-"], input[name="pachd_address"]';

  function topOf(node: Node): Element | null {
    let element: Element | null = node.nodeType === 1 ? (node as Element) : node.parentElement;
    while (element && element.parentElement !== doc.body) element = element.parentElement;
    return element;
  }

  function pass(): void {
    scheduled = false;
    for (const root of Array.from(known)) {
      if (!root.isConnected) {
        known.delete(root);
        continue;
      }
      const view = readWizard(root);
      if (view?.provider === PROVIDER) {
        const fiber = fiberOfNode(root);
        const wizard = fiber ? findWizardBelow(fiber) : null;
        if (wizard) clearMaskOfUnsetToken(wizard, PROVIDER);
      }
      if (view) applyTouchUps(root, view);
      else undoTouchUps(root);
    }
  }

  const observer = new MutationObserver((records) => {
    try {
      for (const record of records) {
        const top = topOf(record.target);
        if (top && !known.has(top) && top.querySelector(signature)) known.add(top);
      }
      if (known.size && !scheduled) {
        scheduled = true;
        (doc.defaultView?.requestAnimationFrame ?? ((f: () => void) => setTimeout(f, 16)))(() => {
          try {
            pass();
          } catch {
            observer.disconnect();
          }
        });
      }
    } catch {
      observer.disconnect();
    }
  });
  observer.observe(doc.body, { childList: true, subtree: true, characterData: true });
  return () => observer.disconnect();
}
