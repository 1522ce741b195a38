/**
 * What the browser bundle gets for `import { createElement } from "react"`.
 *
 * The bundle cannot carry its own React: elements must be the ones Label
 * Studio's React renders, and an element is just a plain object tagged with a
 * `$$typeof` symbol. This shim builds such objects, using the tag learned from
 * a live element of the page (see findElementTag) so it also matches a React
 * whose tag differs from React 18's. Only the icon uses it: no hooks, no
 * components of ours run inside Label Studio's React.
 */

let elementTag: symbol = Symbol.for("react.element");

export function setElementTag(tag: symbol): void {
  elementTag = tag;
}

type Props = Record<string, unknown> & { key?: unknown; ref?: unknown };

export function createElement(type: unknown, props?: Props | null, ...children: unknown[]) {
  const { key, ref, ...rest } = props ?? {};
  if (children.length === 1) rest.children = children[0];
  else if (children.length > 1) rest.children = children;
  return {
    $$typeof: elementTag,
    type,
    key: key === undefined || key === null ? null : String(key),
    ref: ref ?? null,
    props: rest,
    _owner: null,
    _store: {},
  };
}
