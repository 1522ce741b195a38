/**
 * Labeling rounds on a Pachyderm target storage's card (Cloud Storage settings).
 *
 * A target storage with "Promote to" set exports annotations to its working branch
 * (`branch`); a reviewer's promote makes a round commit there and moves `promote_to`,
 * the branch pipelines read, to it in one pachd transaction. Label Studio's card has
 * no place for that, so this adds a small panel under the card's "Sync Storage"
 * button:
 * - "Promote round": asks first (naming `<repo>@<promote_to>` and the working branch,
 *   with "also move the input branch"), then POSTs `.../promote` and says what
 *   happened in plain words, or the server's reason when nothing was moved;
 * - the rounds (GET `.../rounds`), newest first, the one `promote_to` holds marked,
 *   each older one with "Roll back to this round" and, after a roll back, each newer one
 *   with "Promote this round again" (both the same POST with its commit).
 *
 * The card is Label Studio's own component; the storage it shows is its `storage` prop,
 * read off the React fiber of the "Sync Storage" button (see react-internals.ts), with
 * `target: "export"`. A storage list without `promote_to` is completed from the
 * plugin's list API. All text goes in through `textContent`; no token is ever read.
 */
import { keepScanning } from "./observe";
import { ancestors, committedFiber, fiberOfNode } from "./react-internals";

export const PANEL_ID = "pachyderm-rounds";
const SYNC_BUTTON = 'button[aria-label="Sync Storage"]';
export const DEFAULT_INPUTS_BRANCH = "labeled";
const SHOWN_ROUNDS = 5;

export interface TargetStorage {
  id: number;
  type?: string;
  project?: number;
  repo?: string;
  branch?: string;
  pach_project?: string;
  promote_to?: string | null;
}

export interface RoundCard {
  round?: number;
  annotations?: number;
  labels?: Record<string, number>;
  [key: string]: unknown;
}

export interface RoundEntry {
  commit: string;
  current: boolean;
  started: string | null;
  card: RoundCard;
}

export interface RoundsList {
  promote_to: string | null;
  current: string | null;
  rounds: RoundEntry[];
}

export interface PromoteOutcome {
  commit: string;
  rollback: boolean;
  moved: { branch: string; from: string | null; to: string }[];
  round: RoundCard;
}

export type Fetcher = (input: string, init: RequestInit) => Promise<Response>;

// ------------------------------------------------------------------ words
export const short = (commit: string | null | undefined): string => (commit ?? "").slice(0, 7);

function where(storage: TargetStorage, branch: string): string {
  const project = storage.pach_project && storage.pach_project !== "default" ? `${storage.pach_project}/` : "";
  return `${project}${storage.repo ?? "?"}@${branch}`;
}

const annotationsText = (count: unknown): string =>
  typeof count === "number" ? `${count} annotation${count === 1 ? "" : "s"}` : "annotations";

/**
 * The question asked before a promote, before a roll back to an older `round`, or (`again`)
 * before promoting a round newer than the current one again (after a roll back).
 */
export function confirmText(storage: TargetStorage, round?: RoundEntry, again = false): string {
  const to = where(storage, storage.promote_to ?? "");
  const working = where(storage, storage.branch || "master");
  if (round && again) {
    return `Promote again: move ${to} to round ${round.card.round ?? "?"} (commit ${short(round.commit)} on ${working})? Pipelines reading ${to} see that round's annotations again.`;
  }
  if (round) {
    return `Roll back: move ${to} to round ${round.card.round ?? "?"} (commit ${short(round.commit)} on ${working})? Pipelines reading ${to} see that round's annotations again.`;
  }
  return `Promote a round: every annotation submitted so far is committed to ${working} as a round, and ${to} is moved to it. Pipelines reading ${to} see this round.`;
}

export const INPUTS_TEXT = (branch: string = DEFAULT_INPUTS_BRANCH) =>
  `Also move the input branch (${branch}) of each source repo to the round's input commits`;

/** One line for a promote that moved the branch. */
export function outcomeLine(storage: TargetStorage, outcome: PromoteOutcome): string {
  const to = where(storage, storage.promote_to ?? "");
  const round = outcome.round?.round ?? "?";
  const head = outcome.rollback ? `Rolled back to round ${round}` : `Round ${round} promoted`;
  let line = `${head}: ${to} now at ${short(outcome.commit)} (${annotationsText(outcome.round?.annotations)})`;
  const inputs = (outcome.moved ?? []).slice(1).map((move) => `${move.branch.replace(/^default\//, "")} to ${short(move.to)}`);
  if (inputs.length) line += `; also moved ${inputs.join(", ")}`;
  return line;
}

/** The server's reason from a refused promote: LS's 400 shape names the field, 409/503 carry a detail. */
export function refusalLine(status: number, body: unknown, rollback = false): string {
  const prefix = rollback ? "Not rolled back" : "Not promoted";
  const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const errors = record.validation_errors;
  if (typeof errors === "object" && errors !== null) {
    const first = Object.values(errors as Record<string, unknown>)
      .flatMap((value) => (Array.isArray(value) ? value : [value]))
      .map(String)[0];
    if (first) return `${prefix}: ${first}`;
  }
  if (typeof record.detail === "string" && record.detail.trim()) return `${prefix}: ${record.detail.trim()}`;
  return `${prefix}: Label Studio answered ${status}`;
}

/** What a round's button offers: none for the current one, "again" for one newer than it (the list is newest first). */
export function roundAction(rounds: RoundEntry[], index: number): "current" | "again" | "rollback" {
  if (rounds[index]?.current) return "current";
  const current = rounds.findIndex((entry) => entry.current);
  return current >= 0 && index < current ? "again" : "rollback";
}

export const ROLLBACK_TEXT = "Roll back to this round";
export const AGAIN_TEXT = "Promote this round again";

/** A round as one line of the list. */
export function roundLine(entry: RoundEntry): string {
  const started = entry.started ? ` · ${entry.started.replace("T", " ").slice(0, 16)}` : "";
  return `Round ${entry.card.round ?? "?"} · ${short(entry.commit)} · ${annotationsText(entry.card.annotations)}${started}`;
}

// ------------------------------------------------------------------ the card's storage
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** The storage a card shows and whether it is a target one, from the props of the card around `button`. */
export function cardStorageOf(button: Element): { storage: TargetStorage; target: unknown } | null {
  const found = fiberOfNode(button);
  if (!found) return null;
  // The committed fiber: after Label Studio draws the card again, the button may still point at an older one.
  const fiber = committedFiber(found);
  for (const node of ancestors(fiber, 60)) {
    const props = node.memoizedProps;
    if (isObject(props) && isObject(props.storage) && "target" in props && typeof props.storage.id === "number") {
      return { storage: props.storage as unknown as TargetStorage, target: props.target };
    }
  }
  return null;
}

// ------------------------------------------------------------------ requests
function csrfToken(doc: Document): string {
  const cookie = doc.cookie.split("; ").find((entry) => entry.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : "";
}

async function jsonOf(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ the panel
interface PanelState {
  storage: TargetStorage;
  rounds: RoundsList | null;
  roundsError: string | null;
  loading: boolean;
  busy: boolean;
  asking: { round?: RoundEntry; again?: boolean } | null;
  withInputs: boolean;
  outcome: { ok: boolean; text: string } | null;
}

export interface RoundsPanels {
  /** Adds, updates or removes the panels on the cards under the document; returns how many are shown. */
  scan(): number;
  stop(): void;
}

const BUTTON_STYLE =
  "margin:6px 8px 0 0;padding:4px 12px;border:1px solid currentColor;border-radius:4px;background:transparent;color:inherit;font:inherit;cursor:pointer";

export function roundsPanels(doc: Document = document, fetcher: Fetcher = (input, init) => fetch(input, init)): RoundsPanels {
  const states = new Map<number, PanelState>();
  const lists = new Map<number, Promise<TargetStorage[]>>();
  let stopped = false;

  const base = (id: number) => `/api/storages/export/pachyderm/${id}`;
  const request = (path: string, init: RequestInit = {}) =>
    fetcher(path, {
      credentials: "same-origin",
      ...init,
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken(doc) },
    });

  /** The plugin's own list for a project: Label Studio's aggregated list may not carry promote_to. */
  function projectList(project: number): Promise<TargetStorage[]> {
    let pending = lists.get(project);
    if (!pending) {
      pending = request(`/api/storages/export/pachyderm?project=${project}`)
        .then(async (response) => (response.ok ? ((await jsonOf(response)) as TargetStorage[]) : []))
        .catch(() => []);
      lists.set(project, pending);
    }
    return pending;
  }

  function stateOf(storage: TargetStorage): PanelState {
    let state = states.get(storage.id);
    if (!state) {
      state = { storage, rounds: null, roundsError: null, loading: false, busy: false, asking: null, withInputs: false, outcome: null };
      states.set(storage.id, state);
    } else {
      state.storage = { ...state.storage, ...storage };
    }
    return state;
  }

  async function loadRounds(state: PanelState): Promise<void> {
    state.loading = true;
    rerender(state.storage.id);
    try {
      const response = await request(`${base(state.storage.id)}/rounds`);
      const body = await jsonOf(response);
      if (response.ok && isObject(body) && Array.isArray(body.rounds)) {
        state.rounds = body as unknown as RoundsList;
        state.roundsError = null;
      } else {
        state.roundsError = `Rounds not shown: ${isObject(body) && typeof body.detail === "string" ? body.detail : `Label Studio answered ${response.status}`}`;
      }
    } catch (error) {
      state.roundsError = `Rounds not shown: Label Studio did not answer (${String(error)})`;
    } finally {
      state.loading = false;
      rerender(state.storage.id);
    }
  }

  async function promote(state: PanelState, round?: RoundEntry, again = false): Promise<void> {
    state.busy = true;
    state.asking = null;
    state.outcome = null;
    rerender(state.storage.id);
    const body: Record<string, unknown> = { with_inputs: state.withInputs, inputs_branch: DEFAULT_INPUTS_BRANCH };
    if (round) body.commit = round.commit;
    try {
      const response = await request(`${base(state.storage.id)}/promote`, { method: "POST", body: JSON.stringify(body) });
      const answer = await jsonOf(response);
      if (response.ok && isObject(answer) && typeof answer.commit === "string") {
        state.outcome = { ok: true, text: outcomeLine(state.storage, answer as unknown as PromoteOutcome) };
      } else {
        state.outcome = { ok: false, text: refusalLine(response.status, answer, Boolean(round) && !again) };
      }
    } catch (error) {
      state.outcome = { ok: false, text: `${round && !again ? "Not rolled back" : "Not promoted"}: Label Studio did not answer (${String(error)})` };
    } finally {
      state.busy = false;
      rerender(state.storage.id);
    }
    await loadRounds(state);
  }

  function button(text: string, testid: string, onClick: () => void, disabled = false): HTMLButtonElement {
    const element = doc.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.setAttribute("data-testid", testid);
    element.style.cssText = BUTTON_STYLE;
    element.disabled = disabled;
    element.addEventListener("click", (event) => {
      event.preventDefault();
      event.stopPropagation();
      onClick();
    });
    return element;
  }

  function line(text: string, testid: string, style = ""): HTMLElement {
    const element = doc.createElement("div");
    element.setAttribute("data-testid", testid);
    element.textContent = text;
    element.style.cssText = `margin-top:6px;${style}`;
    return element;
  }

  function fill(panel: HTMLElement, state: PanelState): void {
    const { storage } = state;
    panel.replaceChildren();
    const title = line(`Labeling rounds: ${where(storage, storage.branch || "master")} → ${where(storage, storage.promote_to ?? "")}`, "pachyderm-rounds-title", "font-weight:500");
    panel.appendChild(title);

    if (state.asking) {
      const { round, again = false } = state.asking;
      const box = doc.createElement("div");
      box.setAttribute("data-testid", "pachyderm-promote-confirm");
      box.setAttribute("role", "group");
      box.style.cssText = "margin-top:6px;padding:8px;border:1px solid currentColor;border-radius:4px";
      box.appendChild(line(confirmText(storage, round, again), "pachyderm-promote-question", "margin-top:0"));
      const label = doc.createElement("label");
      label.style.cssText = "display:flex;gap:6px;align-items:flex-start;margin-top:6px;font-weight:normal;cursor:pointer";
      const check = doc.createElement("input");
      check.type = "checkbox";
      check.checked = state.withInputs;
      check.setAttribute("data-testid", "pachyderm-promote-with-inputs");
      check.addEventListener("change", () => {
        state.withInputs = check.checked;
      });
      const words = doc.createElement("span");
      words.textContent = INPUTS_TEXT();
      label.append(check, words);
      box.appendChild(label);
      box.appendChild(button(round && !again ? "Roll back" : "Promote", "pachyderm-promote-confirm-button", () => void promote(state, round, again)));
      box.appendChild(
        button("Cancel", "pachyderm-promote-cancel", () => {
          state.asking = null;
          rerender(storage.id);
        }),
      );
      panel.appendChild(box);
    } else {
      panel.appendChild(
        button(state.busy ? "Promoting…" : "Promote round", "pachyderm-promote", () => {
          state.asking = {};
          state.outcome = null;
          rerender(storage.id);
        }, state.busy),
      );
    }

    if (state.outcome) {
      const outcome = line(state.outcome.text, "pachyderm-promote-outcome", state.outcome.ok ? "" : "color:#d32f2f");
      outcome.setAttribute("role", state.outcome.ok ? "status" : "alert");
      panel.appendChild(outcome);
    }

    if (state.roundsError) panel.appendChild(line(state.roundsError, "pachyderm-rounds-error", "color:#d32f2f"));
    const rounds = state.rounds?.rounds ?? [];
    if (state.rounds && rounds.length === 0) panel.appendChild(line("No round yet.", "pachyderm-rounds-empty", "opacity:0.7"));
    if (rounds.length) {
      const list = doc.createElement("ul");
      list.setAttribute("data-testid", "pachyderm-rounds-list");
      list.style.cssText = "margin:6px 0 0;padding:0;list-style:none";
      rounds.slice(0, SHOWN_ROUNDS).forEach((entry, index) => {
        const item = doc.createElement("li");
        item.setAttribute("data-testid", "pachyderm-round");
        item.setAttribute("data-commit", entry.commit);
        item.style.cssText = "margin-top:4px";
        const text = doc.createElement("span");
        text.textContent = roundLine(entry);
        item.appendChild(text);
        const action = roundAction(rounds, index);
        if (action === "current") {
          const now = doc.createElement("strong");
          now.textContent = ` · now ${where(storage, storage.promote_to ?? "")}`;
          item.appendChild(now);
        } else {
          const again = action === "again";
          const back = button(again ? AGAIN_TEXT : ROLLBACK_TEXT, again ? "pachyderm-round-again" : "pachyderm-round-rollback", () => {
            state.asking = { round: entry, again };
            state.outcome = null;
            rerender(storage.id);
          }, state.busy);
          back.style.cssText = `${BUTTON_STYLE};margin:0 0 0 8px;padding:0 8px`;
          item.appendChild(back);
        }
        list.appendChild(item);
      });
      panel.appendChild(list);
      if (rounds.length > SHOWN_ROUNDS) {
        panel.appendChild(line(`and ${rounds.length - SHOWN_ROUNDS} older round(s)`, "pachyderm-rounds-more", "opacity:0.7"));
      }
    }
  }

  function rerender(id: number): void {
    if (stopped) return;
    const state = states.get(id);
    if (!state) return;
    for (const panel of Array.from(doc.querySelectorAll<HTMLElement>(`[data-testid="${PANEL_ID}"][data-storage-id="${id}"]`))) {
      fill(panel, state);
    }
  }

  function place(syncButton: Element, storage: TargetStorage): boolean {
    // The card draws its Sync Storage button in a box of its own inside a flex row; the panel
    // goes right after that row, so it takes the card's whole width.
    const anchor = syncButton.parentElement?.parentElement;
    const container = anchor?.parentElement;
    if (!anchor || !container) return false;
    const promoteTo = storage.promote_to ?? "";
    const existing =
      Array.from(container.children).find((child): child is HTMLElement => child.getAttribute("data-testid") === PANEL_ID) ?? null;
    if (!promoteTo) {
      existing?.remove();
      return false;
    }
    const state = stateOf(storage);
    if (existing && existing.dataset.storageId === String(storage.id) && existing.dataset.promoteTo === promoteTo) return true;
    existing?.remove();
    const panel = doc.createElement("div");
    panel.setAttribute("data-testid", PANEL_ID);
    panel.dataset.storageId = String(storage.id);
    panel.dataset.promoteTo = promoteTo;
    panel.style.cssText = "width:100%;margin-top:12px;padding-top:8px;border-top:1px solid rgba(128,128,128,0.3);font-size:13px;line-height:1.4";
    anchor.after(panel);
    fill(panel, state);
    if (!state.rounds && !state.loading && !state.roundsError) void loadRounds(state);
    return true;
  }

  function scan(): number {
    if (stopped) return 0;
    let shown = 0;
    for (const syncButton of Array.from(doc.querySelectorAll(SYNC_BUTTON))) {
      const found = cardStorageOf(syncButton);
      if (!found || found.target !== "export" || found.storage.type !== "pachyderm") continue;
      const { storage } = found;
      if ("promote_to" in storage) {
        if (place(syncButton, storage)) shown += 1;
      } else if (typeof storage.project === "number") {
        void projectList(storage.project).then((listed) => {
          const full = listed.find((entry) => entry.id === storage.id);
          if (full && !stopped && syncButton.isConnected) place(syncButton, { ...storage, ...full });
        });
      }
    }
    return shown;
  }

  return {
    scan,
    stop: () => {
      stopped = true;
    },
  };
}

/** Keeps the panels on the storage cards for the page's life (cards are drawn again on every visit). */
export function watchRoundsPanels(doc: Document = document): () => void {
  const panels = roundsPanels(doc);
  const stopScanning = keepScanning(doc, panels.scan);
  return () => {
    stopScanning();
    panels.stop();
  };
}
