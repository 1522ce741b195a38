/**
 * Checks that wait for their condition instead of reading the page once.
 *
 * A check of what the page shows must not look the instant the element it depends on
 * appears: Label Studio renders in several passes, and the plugin corrects its words one
 * animation frame after React drew them (web/src/runtime/touch-ups.ts), so on a loaded
 * machine the first look can come before the last pass. Each check polls instead:
 *
 * - something shown: `waitUntil(() => condition, timeout)` until it holds, or the deadline;
 * - an exact number of matches: `waitForCount(page, locator, n)` until there are n, then,
 *   once the page has settled, still n (a duplicate drawn a frame later is caught);
 * - something absent: `waitForAbsence(page, condition)` first lets the page settle (its
 *   animations, two frames), then polls a short, bounded time for the condition to hold.
 *
 * None of them throws on a condition that does not hold: they return false, and the
 * caller's `check`/`expect` reports it with its own message.
 */
import { settle } from "./browser.mjs";

/** Time for a check of something shown; generous, for a loaded machine. */
export const SHOWN_TIMEOUT = 20_000;
/** Time for a check of something absent, once the page has settled. */
export const ABSENT_TIMEOUT = 5_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `condition` (sync or async) every `interval` ms until it returns a truthy value, or
 * until `timeout` ms have passed; returns that value, or false at the deadline. An exception
 * (an element detached while it is read) counts as "not yet". Always calls it at least once.
 */
export async function waitUntil(condition, timeout = SHOWN_TIMEOUT, { interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch {
      // not readable yet
    }
    if (Date.now() >= deadline) return false;
    await sleep(interval);
  }
}

/**
 * True once `locator` matches exactly `n` elements and, after the page has settled, still
 * does; false when that does not happen within `timeout` ms.
 */
export async function waitForCount(page, locator, n, timeout = SHOWN_TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const left = Math.max(0, deadline - Date.now());
    if (!(await waitUntil(async () => (await locator.count()) === n, left))) return false;
    await settle(page, { minimumMs: 100 }).catch(() => {});
    if ((await locator.count()) === n) return true;
    if (Date.now() >= deadline) return false;
  }
}

/**
 * True when `condition` (that something is NOT shown) holds once the page has settled,
 * polled for at most `timeout` ms; call it after what the absence depends on has appeared.
 */
export async function waitForAbsence(page, condition, timeout = ABSENT_TIMEOUT) {
  await settle(page, { minimumMs: 100 }).catch(() => {});
  return Boolean(await waitUntil(condition, timeout));
}

/** `waitForAbsence` of any element matching `locator`. */
export function waitForNone(page, locator, timeout = ABSENT_TIMEOUT) {
  return waitForAbsence(page, async () => (await locator.count()) === 0, timeout);
}
