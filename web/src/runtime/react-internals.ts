/**
 * The few React internals the registration reads, in one place.
 *
 * A pip-installed Label Studio offers no extension point for its storage
 * wizard, so the provider map can only be reached through the React tree
 * behind the DOM. Everything used here has kept its shape from React 16.8
 * through 19: the `__reactFiber$<random>` and `__reactProps$<random>` keys on
 * DOM nodes, fiber links (`return`, `child`, `sibling`, `alternate`),
 * `memoizedProps`, a function component's hook list in `memoizedState`, effect
 * records (`create`, `deps`) and state queues (`queue.dispatch`). Prop names
 * survive minification; nothing here depends on component names or webpack
 * module ids.
 */

export interface Fiber {
  tag: number;
  alternate: Fiber | null;
  return: Fiber | null;
  child: Fiber | null;
  sibling: Fiber | null;
  /** An object for components and elements; a string for text nodes. */
  memoizedProps: unknown;
  memoizedState: unknown;
  stateNode: unknown;
}

export interface Hook {
  memoizedState: unknown;
  queue: { dispatch?: (action: unknown) => void; lastRenderedState?: unknown } | null;
  next: Hook | null;
}

export interface Effect {
  create: () => unknown;
  deps: unknown[] | null;
}

const FIBER_KEY_PREFIX = "__reactFiber$";
const PROPS_KEY_PREFIX = "__reactProps$";

/** How many fibers a search visits at most; a storage modal has a few hundred. */
export const SEARCH_LIMIT = 20_000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function internalKey(node: Node, prefix: string): unknown {
  for (const key of Object.keys(node)) {
    if (key.startsWith(prefix)) return (node as unknown as Record<string, unknown>)[key];
  }
  return undefined;
}

/**
 * The committed fiber of a DOM node rendered by React, or null.
 *
 * A node keeps a pointer to the fiber it was created with, which after an
 * update may be the stale one of a pair of alternates; the committed one is
 * the fiber whose props are the props React last applied to the node.
 */
export function fiberOfNode(node: Node): Fiber | null {
  const fiber = internalKey(node, FIBER_KEY_PREFIX);
  if (!isObject(fiber)) return null;
  const current = fiber as unknown as Fiber;
  const props = internalKey(node, PROPS_KEY_PREFIX);
  if (current.alternate && current.memoizedProps !== props && current.alternate.memoizedProps === props) {
    return current.alternate;
  }
  return current;
}

const HOST_ROOT = 3;

/**
 * The committed one of a fiber and its alternate, found from the root down.
 *
 * A DOM node whose props did not change keeps pointing at the fiber of an older render,
 * whose ancestors hold that render's props. The root knows its committed fiber; from it,
 * each level of the path down is whichever of the pair is its parent's child. Returns
 * `fiber` itself when the path cannot be followed.
 */
export function committedFiber(fiber: Fiber, limit = 1_000): Fiber {
  const path = Array.from(ancestors(fiber, limit));
  const top = path[path.length - 1];
  const rootCurrent = top.tag === HOST_ROOT && isObject(top.stateNode) ? (top.stateNode as { current?: unknown }).current : undefined;
  if (!isObject(rootCurrent)) return fiber;
  let current = rootCurrent as unknown as Fiber;
  if (current !== top && current !== top.alternate) return fiber;
  for (let index = path.length - 2; index >= 0; index -= 1) {
    const wanted = path[index];
    let child = current.child;
    for (let steps = 0; child && child !== wanted && child !== wanted.alternate && steps < SEARCH_LIMIT; steps += 1) child = child.sibling;
    if (!child || (child !== wanted && child !== wanted.alternate)) return fiber;
    current = child;
  }
  return current;
}

/** A fiber and its ancestors, nearest first. */
export function* ancestors(fiber: Fiber, limit = 1_000): Generator<Fiber> {
  let node: Fiber | null = fiber;
  for (let steps = 0; node && steps < limit; steps += 1) {
    yield node;
    node = node.return;
  }
}

/** Pre-order walk of a fiber and its descendants (parents before children). */
export function* descendants(fiber: Fiber, limit = SEARCH_LIMIT): Generator<Fiber> {
  const stack: Fiber[] = [fiber];
  let visited = 0;
  while (stack.length > 0 && visited < limit) {
    const node = stack.pop() as Fiber;
    visited += 1;
    yield node;
    if (node !== fiber && node.sibling) stack.push(node.sibling);
    if (node.child) stack.push(node.child);
  }
}

function isHook(value: unknown): value is Hook {
  return isObject(value) && "memoizedState" in value && "queue" in value && "next" in value;
}

/** A function component's hooks, in call order. */
export function hooksOf(fiber: Fiber): Hook[] {
  const hooks: Hook[] = [];
  let hook = fiber.memoizedState;
  while (isHook(hook) && hooks.length < 500) {
    hooks.push(hook);
    hook = hook.next;
  }
  return hooks;
}

/** The effect record of a useEffect / useLayoutEffect hook, else null. */
export function effectOf(hook: Hook): Effect | null {
  const state = hook.memoizedState;
  if (!isObject(state) || typeof state.create !== "function") return null;
  if (state.deps !== null && !Array.isArray(state.deps)) return null;
  return state as unknown as Effect;
}

function elementTagOf(value: unknown): symbol | null {
  if (!isObject(value) || typeof value.$$typeof !== "symbol") return null;
  // Portals carry a $$typeof too, but no `type`/`props`.
  return "type" in value && "props" in value ? value.$$typeof : null;
}

/**
 * The `$$typeof` marker the running React puts on elements, read off an
 * element found in the props of a fiber or its descendants. React 18 and 19
 * use different markers.
 */
export function findElementTag(fiber: Fiber): symbol | null {
  for (const node of descendants(fiber)) {
    const props = node.memoizedProps;
    const children = isObject(props) ? props.children : undefined;
    for (const child of Array.isArray(children) ? children : [children]) {
      const tag = elementTagOf(child);
      if (tag) return tag;
    }
  }
  return null;
}
