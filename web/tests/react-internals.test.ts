import { describe, expect, it } from "vitest";
import { type Fiber, descendants, effectOf, fiberOfNode, hooksOf } from "../src/runtime/react-internals";
import { isProviderMap } from "../src/runtime/wizard";

function fiber(props: unknown, extra: Partial<Fiber> = {}): Fiber {
  return {
    tag: 0,
    alternate: null,
    return: null,
    child: null,
    sibling: null,
    memoizedProps: props,
    memoizedState: null,
    stateNode: null,
    ...extra,
  };
}

describe("fiberOfNode", () => {
  it("returns null for nodes React did not render", () => {
    expect(fiberOfNode({} as Node)).toBeNull();
  });

  it("picks the alternate whose props React last applied to the node", () => {
    const props = { id: "new" };
    const stale = fiber({ id: "old" });
    const current = fiber(props, { alternate: stale });
    stale.alternate = current;
    const node = { "__reactFiber$abc": stale, "__reactProps$abc": props } as unknown as Node;
    expect(fiberOfNode(node)).toBe(current);
  });

  it("keeps the fiber the node points at when it is current", () => {
    const props = { id: "x" };
    const current = fiber(props, { alternate: fiber({ id: "older" }) });
    const node = { "__reactFiber$abc": current, "__reactProps$abc": props } as unknown as Node;
    expect(fiberOfNode(node)).toBe(current);
  });
});

describe("descendants", () => {
  it("walks parents before children and stays inside the subtree", () => {
    const root = fiber("root");
    const a = fiber("a");
    const b = fiber("b");
    const a1 = fiber("a1");
    const outside = fiber("outside");
    root.child = a;
    a.sibling = b;
    a.child = a1;
    root.sibling = outside;
    expect([...descendants(root)].map((node) => node.memoizedProps)).toEqual(["root", "a", "a1", "b"]);
    expect([...descendants(root, 2)]).toHaveLength(2);
  });
});

describe("hooksOf / effectOf", () => {
  it("reads a function component's hook list and its effects", () => {
    const create = () => undefined;
    const effectHook = { memoizedState: { create, deps: [1] }, queue: null, next: null };
    const stateHook = { memoizedState: { currentStep: 0 }, queue: { dispatch: () => undefined }, next: effectHook };
    const component = fiber({}, { memoizedState: stateHook });
    const hooks = hooksOf(component);
    expect(hooks).toHaveLength(2);
    expect(effectOf(hooks[0])).toBeNull();
    expect(effectOf(hooks[1])).toEqual({ create, deps: [1] });
  });

  it("finds no hooks on a class component's state", () => {
    expect(hooksOf(fiber({}, { memoizedState: { count: 1 } }))).toEqual([]);
  });
});

describe("isProviderMap", () => {
  const provider = { name: "s3", title: "Amazon S3", fields: [], layout: [] };

  it("accepts a map of provider configs", () => {
    expect(isProviderMap({ s3: provider })).toBe(true);
  });

  it("rejects other props named providers (the modal's list of context providers)", () => {
    expect(isProviderMap([provider])).toBe(false);
    expect(isProviderMap({})).toBe(false);
    expect(isProviderMap({ s3: provider, api: { name: "api" } })).toBe(false);
    expect(isProviderMap(null)).toBe(false);
  });
});
