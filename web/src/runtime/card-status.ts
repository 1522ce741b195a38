/**
 * What a Pachyderm storage's `meta` says, on its card (Cloud Storage settings).
 *
 * Label Studio's card shows a storage's status, last sync and counts, but nothing of
 * what the plugin keeps in `meta`. This adds a few lines under the card's "Sync
 * Storage" button:
 * - a source storage with `watch_commits` on: "Watching <project>/<repo>@<branch> since
 *   <when>" (`meta.watching`, `meta.watch_since`), the last commit seen
 *   (`meta.watch_last_commit`, `meta.watch_last_event`) and, while the watcher cannot
 *   follow the branch, its reason (`meta.watch_last_error`);
 * - a target storage: "N annotation change(s) waiting to be exported, oldest X ago"
 *   (`meta.pending_exports`, `meta.oldest_pending_seconds`) while N > 0, and
 *   `meta.last_export_error` while set; nothing otherwise.
 *
 * The storage is the card's `storage` prop (read off the "Sync Storage" button's fiber,
 * as runtime/rounds.ts does). Its `meta` is used as Label Studio's list gave it; when it
 * is missing, and every ~10 s while the page is visible, the plugin's own list
 * (`GET /api/storages/pachyderm?project=` or `/api/storages/export/pachyderm?project=`,
 * `meta` read live) is fetched once per project and kind, never per card. All text goes
 * in through `textContent`.
 */
import { keepScanning } from "./observe";
import { cardStorageOf, short, type Fetcher } from "./rounds";

export const STATUS_ID = "pachyderm-card-status";
const SYNC_BUTTON = 'button[aria-label="Sync Storage"]';
export const REFRESH_MS = 10_000;

export type Kind = "source" | "target";

export interface StorageMeta {
  watching?: boolean;
  watch_since?: string | null;
  watch_last_event?: string | null;
  watch_last_commit?: string | null;
  watch_last_error?: string | null;
  pending_exports?: number;
  oldest_pending_seconds?: number | null;
  last_export_error?: string | null;
  [key: string]: unknown;
}

export interface CardStorage {
  id: number;
  type?: string;
  project?: number;
  repo?: string;
  branch?: string;
  pach_project?: string;
  watch_commits?: boolean;
  meta?: StorageMeta | null;
}

export interface StatusLine {
  text: string;
  testid: string;
  error?: boolean;
}

// ------------------------------------------------------------------ words
/** A duration in seconds as "12 s", "3 min", "2 h", "4 days". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  const days = Math.floor(s / 86_400);
  return `${days} day${days === 1 ? "" : "s"}`;
}

/** A time the server wrote (Python's `str(datetime)` or ISO 8601) in milliseconds, or null. */
export function parseTime(value: unknown): number | null {
  if (typeof value !== "string" || !value.trim()) return null;
  const iso = value
    .trim()
    .replace(" ", "T")
    .replace(/(\.\d{3})\d+/, "$1");
  const parsed = Date.parse(iso);
  return Number.isNaN(parsed) ? null : parsed;
}

/** "3 min ago" for a time the server wrote, or null when it is not a time. */
export function ago(value: unknown, now: number): string | null {
  const at = parseTime(value);
  return at === null ? null : `${duration((now - at) / 1000)} ago`;
}

const plain = (value: unknown): string | null => (typeof value === "string" && value.trim() ? value.trim() : null);

function where(storage: CardStorage): string {
  return `${storage.pach_project || "default"}/${storage.repo ?? "?"}@${storage.branch || "master"}`;
}

/** The lines a watching source storage's card shows. */
export function watchLines(storage: CardStorage, now: number): StatusLine[] {
  if (storage.watch_commits !== true) return [];
  const meta = storage.meta ?? {};
  const lines: StatusLine[] = [];
  if (meta.watching === true) {
    const since = ago(meta.watch_since, now);
    lines.push({ text: `Watching ${where(storage)}${since ? ` since ${since}` : ""}`, testid: "pachyderm-watching" });
    const commit = plain(meta.watch_last_commit);
    if (commit) {
      const seen = ago(meta.watch_last_event, now);
      lines.push({ text: `Last commit seen: ${short(commit)}${seen ? `, ${seen}` : ""}`, testid: "pachyderm-watch-last-commit" });
    }
  }
  const error = plain(meta.watch_last_error);
  if (error) lines.push({ text: `Not following the branch: ${error}`, testid: "pachyderm-watch-error", error: true });
  return lines;
}

/** The lines a target storage's card shows. */
export function exportLines(storage: CardStorage, _now: number): StatusLine[] {
  const meta = storage.meta ?? {};
  const lines: StatusLine[] = [];
  const pending = meta.pending_exports;
  if (typeof pending === "number" && pending > 0) {
    const oldest = typeof meta.oldest_pending_seconds === "number" ? `, oldest ${duration(meta.oldest_pending_seconds)} ago` : "";
    lines.push({
      text: `${pending} annotation change${pending === 1 ? "" : "s"} waiting to be exported${oldest}`,
      testid: "pachyderm-pending-exports",
    });
  }
  const error = plain(meta.last_export_error);
  if (error) lines.push({ text: `Last export error: ${error}`, testid: "pachyderm-export-error", error: true });
  return lines;
}

export function linesFor(kind: Kind, storage: CardStorage, now: number): StatusLine[] {
  return kind === "source" ? watchLines(storage, now) : exportLines(storage, now);
}

/** Whether a storage's meta carries what its card's lines are made of (else the plugin's list is asked). */
export function metaComplete(kind: Kind, storage: CardStorage): boolean {
  const meta = storage.meta;
  if (typeof meta !== "object" || meta === null) return false;
  if (kind === "target") return "pending_exports" in meta;
  return storage.watch_commits !== true || "watching" in meta;
}

// ------------------------------------------------------------------ the lines on the cards
export interface CardStatus {
  /** Adds, updates or removes the lines on the cards under the document; returns how many cards show some. */
  scan(): number;
  /** Asks the plugin's lists again (once per project and kind with a card on the page), then redraws. */
  refresh(): Promise<void>;
  stop(): void;
}

interface Seen {
  kind: Kind;
  /** The storage object Label Studio last gave the card: a new one means the card was drawn again. */
  props: unknown;
  storage: CardStorage;
}

const key = (kind: Kind, id: number) => `${kind}:${id}`;

export function cardStatus(
  doc: Document = document,
  fetcher: Fetcher = (input, init) => fetch(input, init),
  clock: () => number = () => Date.now(),
): CardStatus {
  const seen = new Map<string, Seen>();
  const inflight = new Map<string, Promise<void>>();
  let stopped = false;

  const listPath = (kind: Kind, project: number) =>
    kind === "source" ? `/api/storages/pachyderm?project=${project}` : `/api/storages/export/pachyderm?project=${project}`;

  /** One request for a project's storages of a kind; its metas replace what the cards had. */
  function load(kind: Kind, project: number): Promise<void> {
    const id = `${kind}:${project}`;
    let pending = inflight.get(id);
    if (!pending) {
      pending = fetcher(listPath(kind, project), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(async (response) => {
          if (!response.ok) return;
          const listed: unknown = await response.json().catch(() => null);
          if (!Array.isArray(listed)) return;
          for (const entry of listed as CardStorage[]) {
            const known = entry && typeof entry.id === "number" ? seen.get(key(kind, entry.id)) : undefined;
            if (known) known.storage = { ...known.storage, ...entry };
          }
        })
        .catch(() => {})
        .finally(() => {
          inflight.delete(id);
          if (!stopped) draw();
        });
      inflight.set(id, pending);
    }
    return pending;
  }

  function place(syncButton: Element, lines: StatusLine[], id: number, kind: Kind): boolean {
    const anchor = syncButton.parentElement?.parentElement;
    const container = anchor?.parentElement;
    if (!anchor || !container) return false;
    let box =
      Array.from(container.children).find((child): child is HTMLElement => child.getAttribute("data-testid") === STATUS_ID) ?? null;
    if (!lines.length) {
      box?.remove();
      return false;
    }
    if (!box) {
      box = doc.createElement("div");
      box.setAttribute("data-testid", STATUS_ID);
      box.style.cssText = "width:100%;margin-top:8px;font-size:13px;line-height:1.4";
    }
    // Right under the Sync Storage row, above the rounds panel when there is one.
    if (anchor.nextElementSibling !== box) anchor.after(box);
    if (box.dataset.storageId !== String(id)) box.dataset.storageId = String(id);
    if (box.dataset.kind !== kind) box.dataset.kind = kind;
    const signature = JSON.stringify(lines);
    if (box.dataset.lines !== signature) {
      box.dataset.lines = signature;
      box.replaceChildren(
        ...lines.map((entry) => {
          const element = doc.createElement("div");
          element.setAttribute("data-testid", entry.testid);
          element.textContent = entry.text;
          element.style.cssText = `margin-top:2px;${entry.error ? "color:#d32f2f" : "opacity:0.85"}`;
          if (entry.error) element.setAttribute("role", "alert");
          return element;
        }),
      );
    }
    return true;
  }

  /** Every Pachyderm card on the page, with the storage its props carry. */
  function cards(): { button: Element; kind: Kind; props: CardStorage }[] {
    const found: { button: Element; kind: Kind; props: CardStorage }[] = [];
    for (const button of Array.from(doc.querySelectorAll(SYNC_BUTTON))) {
      const card = cardStorageOf(button);
      if (!card || card.storage.type !== "pachyderm") continue;
      found.push({ button, kind: card.target === "export" ? "target" : "source", props: card.storage as unknown as CardStorage });
    }
    return found;
  }

  /** Draws the lines from what is known, without asking anything. */
  function draw(): number {
    if (stopped) return 0;
    const now = clock();
    let shown = 0;
    for (const { button, kind, props } of cards()) {
      const known = seen.get(key(kind, props.id));
      const storage = known && known.props === props ? known.storage : props;
      if (place(button, linesFor(kind, storage, now), props.id, kind)) shown += 1;
    }
    return shown;
  }

  function scan(): number {
    if (stopped) return 0;
    const missing = new Set<string>();
    for (const { kind, props } of cards()) {
      const known = seen.get(key(kind, props.id));
      if (known && known.props === props) continue;
      // A card drawn (again) by Label Studio: its own meta when it has one, else the plugin's list.
      seen.set(key(kind, props.id), { kind, props, storage: { ...props } });
      if (!metaComplete(kind, props) && typeof props.project === "number") missing.add(`${kind}:${props.project}`);
    }
    for (const entry of missing) {
      const [kind, project] = entry.split(":");
      void load(kind as Kind, Number(project));
    }
    return draw();
  }

  async function refresh(): Promise<void> {
    if (stopped) return;
    const wanted = new Map<string, [Kind, number]>();
    for (const { kind, props } of cards()) {
      if (typeof props.project === "number") wanted.set(`${kind}:${props.project}`, [kind, props.project]);
    }
    scan();
    await Promise.all(Array.from(wanted.values()).map(([kind, project]) => load(kind, project)));
  }

  return {
    scan,
    refresh,
    stop: () => {
      stopped = true;
    },
  };
}

/** Keeps the lines on the storage cards for the page's life, refreshed every ~10 s while the page is visible. */
export function watchCardStatus(doc: Document = document, every: number = REFRESH_MS): () => void {
  const status = cardStatus(doc);
  const stopScanning = keepScanning(doc, status.scan);
  const timer = setInterval(() => {
    if (doc.visibilityState === "visible" && doc.querySelector(SYNC_BUTTON)) void status.refresh();
  }, every);
  return () => {
    stopScanning();
    clearInterval(timer);
    status.stop();
  };
}
