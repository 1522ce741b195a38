/**
 * Finding Label Studio's storage wizard in a React tree, and bringing an open
 * wizard up to date after a provider was added to its map.
 *
 * Facts about Label Studio 1.23's wizard this relies on (all observable from
 * outside, none of its code is reused):
 * - the wizard component receives the module-level provider map as its
 *   `providers` prop; every later wizard gets the same object, so an entry
 *   added to it shows up in every later wizard;
 * - on mount, an effect whose only dependency is that map copies each entry
 *   into a second registry, which is where the form steps look providers up;
 * - the form's state is one object holding `currentStep` and `formData`;
 * - in edit mode, a one-time effect depending on the `storage` prop loads the
 *   stored values, and skips them while the storage's type is unknown.
 * A wizard that is already open when the entry is added has run those effects
 * without it, so they are run again and the form re-rendered.
 */
import { type Effect, type Fiber, type Hook, ancestors, descendants, effectOf, hooksOf } from "./react-internals";

export type ProviderMap = Record<string, unknown>;

export interface Wizard {
  /** The topmost fiber receiving the provider map: the wizard component itself. */
  fiber: Fiber;
  providers: ProviderMap;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function looksLikeProvider(value: unknown): boolean {
  return (
    isPlainObject(value) &&
    typeof value.name === "string" &&
    typeof value.title === "string" &&
    Array.isArray(value.fields) &&
    Array.isArray(value.layout)
  );
}

function propOf(fiber: Fiber, name: string): unknown {
  const props = fiber.memoizedProps;
  return isPlainObject(props) ? props[name] : undefined;
}

/** A map of provider configs, as opposed to other props named `providers`. */
export function isProviderMap(value: unknown): value is ProviderMap {
  if (!isPlainObject(value)) return false;
  const entries = Object.values(value);
  return entries.length > 0 && entries.every(looksLikeProvider);
}

/** The wizard rendered at or below a fiber (the first fiber given the map, in tree order). */
export function findWizardBelow(fiber: Fiber): Wizard | null {
  for (const node of descendants(fiber)) {
    const providers = propOf(node, "providers");
    if (isProviderMap(providers)) return { fiber: node, providers };
  }
  return null;
}

/** The wizard a fiber is rendered in: the outermost ancestor given the map. */
export function findWizardAbove(fiber: Fiber): Wizard | null {
  let found: Wizard | null = null;
  for (const node of ancestors(fiber)) {
    const providers = propOf(node, "providers");
    if (isProviderMap(providers) && (!found || providers === found.providers)) found = { fiber: node, providers };
  }
  return found;
}

/**
 * Whether the tree holds a storage form that is not the wizard (the legacy,
 * server-driven form gets `storageTypes` but no provider map).
 */
export function hasStorageForm(fiber: Fiber): boolean {
  for (const node of descendants(fiber)) {
    const props = node.memoizedProps;
    // Text fibers have a string here, not an object.
    if (isPlainObject(props) && "storageTypes" in props && "target" in props) return true;
  }
  return false;
}

export interface RefreshPlan {
  /** Copies the provider map into the wizard's registry. */
  registry: Effect;
  /** Loads a stored storage into the form in edit mode, when present. */
  load: Effect | null;
  /** Re-renders the wizard with unchanged state. */
  rerender: () => void;
}

function isFormState(state: unknown): state is Record<string, unknown> {
  return isPlainObject(state) && "formData" in state && "currentStep" in state;
}

function formStateHook(hooks: Hook[]): Hook | null {
  return hooks.find((hook) => typeof hook.queue?.dispatch === "function" && isFormState(hook.memoizedState)) ?? null;
}

/**
 * A state hook's value as last rendered. The hook read may belong to the fiber's older
 * alternate (a node's fiber can be either one when its props did not change); the queue
 * is shared by both, and its `lastRenderedState` is the newest value.
 */
function latestState(hook: Hook): Record<string, unknown> {
  const latest = hook.queue?.lastRenderedState;
  return (isFormState(latest) ? latest : hook.memoizedState) as Record<string, unknown>;
}

/** The wizard's form state (`currentStep`, `formData`, ...) as last rendered, or null. */
export function formStateOf(wizard: Wizard): Record<string, unknown> | null {
  const hook = formStateHook(hooksOf(wizard.fiber));
  return hook ? latestState(hook) : null;
}

/** Everything needed to refresh an open wizard, or null when something is missing. */
export function planRefresh(wizard: Wizard): RefreshPlan | null {
  const hooks = hooksOf(wizard.fiber);
  const effects = hooks.map(effectOf).filter((effect): effect is Effect => effect !== null);
  const registry = effects.find((effect) => effect.deps?.length === 1 && effect.deps[0] === wizard.providers);
  const state = formStateHook(hooks);
  if (!registry || !state) return null;
  const storage = propOf(wizard.fiber, "storage");
  const load = isPlainObject(storage)
    ? (effects.find((effect) => effect !== registry && effect.deps?.includes(storage)) ?? null)
    : null;
  const dispatch = state.queue?.dispatch as (action: unknown) => void;
  return {
    registry,
    load,
    // A new object with the same content is enough for React to render again.
    rerender: () => dispatch((previous: Record<string, unknown>) => ({ ...previous })),
  };
}

/** The storage being edited in this wizard, if any. */
export function editedStorageType(wizard: Wizard): string | null {
  const storage = propOf(wizard.fiber, "storage");
  return isPlainObject(storage) && typeof storage.type === "string" ? storage.type : null;
}

export function refresh(plan: RefreshPlan, reloadStorage: boolean): void {
  plan.registry.create();
  if (reloadStorage) plan.load?.create();
  plan.rerender();
}

/** What Label Studio 1.23's wizard puts in every secret field (`accessKey`) of a storage it edits. */
export const SECRET_MASK = "••••••••••••••••";

/**
 * In edit mode the wizard fills every secret field with `SECRET_MASK`, whether or not
 * the storage has that secret; it never has the secret itself (the plugin's API does
 * not return it). The plugin's storages say whether a token is stored
 * (`auth_token_set`); for one without a token, the field is emptied, so the form does
 * not claim a token that is not there. An empty field is left out of the request just
 * like the mask (the stored value, none, stays). Returns whether it changed the form.
 */
export function clearMaskOfUnsetToken(wizard: Wizard, provider: string): boolean {
  const storage = propOf(wizard.fiber, "storage");
  if (!isPlainObject(storage) || storage.type !== provider || storage.auth_token_set !== false) return false;
  const hook = formStateHook(hooksOf(wizard.fiber));
  const state = hook ? latestState(hook) : undefined;
  const formData = state?.formData as Record<string, unknown> | undefined;
  if (!hook || !formData || formData.auth_token !== SECRET_MASK) return false;
  const dispatch = hook.queue?.dispatch as (action: unknown) => void;
  dispatch((previous: Record<string, unknown>) => {
    const data = previous.formData as Record<string, unknown>;
    return data?.auth_token === SECRET_MASK ? { ...previous, formData: { ...data, auth_token: "" } } : previous;
  });
  return true;
}
