/**
 * Adds a provider to the storage wizard of the running Label Studio.
 *
 * The provider map only becomes reachable when a storage modal opens, so a
 * MutationObserver waits for one. Label Studio renders modals into portals
 * appended to <body>; each change inside such a portal is traced back to the
 * portal's top element, and the React tree under it is searched for the
 * wizard. (Provider tiles, `data-testid="storage-provider-<name>"`, are a
 * second way in, for a wizard rendered somewhere else.) When found:
 * - the provider is added to the shared map, so later wizards list it natively;
 * - the open wizard is refreshed so it lists the tile now and, when it is
 *   editing a storage of this type, loads it instead of reporting an unknown
 *   provider;
 * - if the open wizard cannot be refreshed, the entry is added once that modal
 *   is gone instead, so the next wizard has it from the start.
 * Then the observer stops: there is nothing left to do on this page.
 *
 * Failing safe: when a storage modal shows but no wizard can be found (another
 * Label Studio version, or its legacy storage form), nothing is changed and one
 * console warning says why.
 */
import type { ProviderConfig } from "../types/provider";
import { type Fiber, fiberOfNode, findElementTag } from "./react-internals";
import { setElementTag } from "./react-shim";
import {
  type Wizard,
  editedStorageType,
  findWizardAbove,
  findWizardBelow,
  hasStorageForm,
  planRefresh,
  refresh,
} from "./wizard";

export type AttachState = "waiting" | "attached" | "deferred" | "present" | "failed";

export interface AttachOptions {
  document?: Document;
  warn?: (message: string) => void;
}

export interface Attachment {
  state(): AttachState;
  stop(): void;
}

const TILE_SELECTOR = '[data-testid^="storage-provider-"]';
const WARN_PREFIX = "[label-studio-pachyderm]";

export const WARNINGS = {
  unexpected:
    "The storage wizard did not look as expected, so the Pachyderm provider was not added. This Label Studio version is not supported by the browser registration; the server-driven storage form still offers Pachyderm.",
  unreachable:
    "The storage wizard is open but its React internals are not reachable, so the Pachyderm provider was not added. This Label Studio version is not supported by the browser registration; the server-driven storage form still offers Pachyderm.",
  legacyForm:
    "This Label Studio shows its legacy storage form (no provider wizard found), so nothing was added to a wizard. The legacy form lists Pachyderm from the server.",
} as const;

export function attachProvider(provider: ProviderConfig, options: AttachOptions = {}): Attachment {
  const doc = options.document ?? document;
  const warn = options.warn ?? ((message: string) => console.warn(message));
  let state: AttachState = "waiting";
  // While deferred: the modal whose wizard could not be refreshed.
  let deferred: { wizard: Wizard; modal: Element } | null = null;

  const observer = new MutationObserver((records) => safely(() => handle(records)));

  function finish(next: AttachState, warning?: string): void {
    state = next;
    observer.disconnect();
    if (warning) warn(`${WARN_PREFIX} ${warning}`);
  }

  /** The child of <body> an element sits in (a portal's top element), if any. */
  function bodyChildOf(element: Element): Element | null {
    let node: Element | null = element;
    while (node && node.parentElement !== doc.body) node = node.parentElement;
    return node;
  }

  function attachTo(wizard: Wizard, modal: Element): void {
    if (provider.name in wizard.providers) {
      // A Label Studio built with this provider in its source tree.
      finish("present");
      return;
    }
    const tag = findElementTag(wizard.fiber);
    if (tag) setElementTag(tag);
    const plan = planRefresh(wizard);
    if (!plan) {
      // Adding the entry now could show a tile this wizard cannot open.
      state = "deferred";
      deferred = { wizard, modal };
      return;
    }
    wizard.providers[provider.name] = provider;
    try {
      refresh(plan, editedStorageType(wizard) === provider.name);
    } catch (error) {
      // Leave the map as it was: a tile the wizard cannot open is worse than none.
      delete wizard.providers[provider.name];
      throw error;
    }
    finish("attached");
  }

  function inspect(elements: Iterable<Element>): void {
    const modals = new Set<Element>();
    const tiles: Element[] = [];
    for (const element of elements) {
      const modal = bodyChildOf(element);
      if (modal) modals.add(modal);
      const tile = element.matches(TILE_SELECTOR) ? element : element.querySelector(TILE_SELECTOR);
      if (tile) tiles.push(tile);
    }

    let sawStorageForm = false;
    for (const modal of modals) {
      const fiber = fiberOfNode(modal);
      if (!fiber) continue;
      const wizard = findWizardBelow(fiber);
      if (wizard) return attachTo(wizard, modal);
      sawStorageForm ||= hasStorageForm(fiber);
    }
    for (const tile of tiles) {
      const fiber: Fiber | null = fiberOfNode(tile);
      const wizard = fiber ? findWizardAbove(fiber) : null;
      if (wizard) return attachTo(wizard, bodyChildOf(tile) ?? tile);
    }
    if (tiles.length > 0) finish("failed", WARNINGS.unreachable);
    else if (sawStorageForm) finish("failed", WARNINGS.legacyForm);
  }

  function addedElements(records: MutationRecord[]): Element[] {
    const elements: Element[] = [];
    for (const record of records) {
      for (const node of Array.from(record.addedNodes)) {
        if (node.nodeType === 1) elements.push(node as Element);
      }
    }
    return elements;
  }

  /** Runs a step; any surprise ends the attempt with one warning instead of a page error. */
  function safely(step: () => void): void {
    try {
      step();
    } catch (error) {
      finish("failed", `${WARNINGS.unexpected} (${error instanceof Error ? error.message : String(error)})`);
    }
  }

  function handle(records: MutationRecord[]): void {
    if (state === "deferred" && deferred) {
      if (!deferred.modal.isConnected) {
        deferred.wizard.providers[provider.name] = provider;
        finish("attached");
      }
      return;
    }
    if (state === "waiting") inspect(addedElements(records));
  }

  observer.observe(doc.body, { childList: true, subtree: true });
  // The script may run while a storage modal is already open.
  safely(() => inspect(Array.from(doc.body.children)));

  return {
    state: () => state,
    stop: () => observer.disconnect(),
  };
}
