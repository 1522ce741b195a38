/**
 * Browser helpers for driving a real Label Studio in headless Chromium.
 */
import { join } from "node:path";
import { chromium } from "playwright-core";

/**
 * Debian's Chromium, not a Playwright download. The flags keep it headless in a
 * container (no sandbox, no GPU) and stop it phoning home mid-run.
 */
export function launchChromium(executablePath) {
  return chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Logs in through the login page; a session that is already logged in is kept (LS redirects). */
export async function login(page, base, email, password) {
  await page.goto(`${base}/user/login/`);
  if (!new URL(page.url()).pathname.startsWith("/user/login")) return;
  await page.fill("#email", email);
  await page.fill("#password", password);
  await Promise.all([
    page.waitForURL((url) => !url.pathname.startsWith("/user/login"), { timeout: 30_000 }),
    page.click("button[type=submit]"),
  ]);
}

/**
 * Waits until nothing on the page is moving: Label Studio's modals fade and
 * slide in with CSS transitions, started a tick after the class that triggers
 * them, so first give them that tick, then wait for every finite animation
 * (spinners loop forever and are ignored), web fonts, and two frames.
 */
export async function settle(page, { minimumMs = 300 } = {}) {
  await page.waitForTimeout(minimumMs);
  await page.waitForFunction(
    () =>
      document.getAnimations().every((animation) => {
        if (animation.playState !== "running") return true;
        const timing = animation.effect?.getComputedTiming?.();
        return timing ? timing.iterations === Infinity : false;
      }),
    null,
    { timeout: 15_000, polling: 100 },
  );
  await page.evaluate(
    () =>
      document.fonts.ready.then(
        () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))),
      ),
  );
}

/** A screenshot taken only once the page has settled. */
export function screenshotter(directory, log) {
  return async function shot(page, name) {
    await settle(page);
    const path = join(directory, name);
    await page.screenshot({ path });
    log(`screenshot ${path}`);
    return path;
  };
}

/**
 * Clicks "Add Source Storage" / "Add Target Storage". While the storage list
 * loads the page shows a disabled copy, and an "...-empty-state" copy when the
 * list is empty, so wait for one that is visible and enabled.
 */
export async function clickAddStorage(page, kind) {
  const selector = `[data-testid^="add-${kind}-storage-button"]`;
  await page.waitForFunction(
    (selector) => [...document.querySelectorAll(selector)].some((button) => button.offsetParent && !button.disabled),
    selector,
    { timeout: 60_000 },
  );
  await page.locator(`${selector}:not([disabled])`).filter({ visible: true }).first().click();
}

/** Waits for the first response whose method and URL path match; returns it. */
export function nextResponse(page, method, pathPattern, timeout = 60_000) {
  return page.waitForResponse(
    (response) => response.request().method() === method && pathPattern.test(new URL(response.url()).pathname),
    { timeout },
  );
}

/** Text of a response body, or "" when it has none (a redirect, an aborted request). */
export async function bodyText(response) {
  try {
    return await response.text();
  } catch {
    return "";
  }
}

/**
 * A storage's card on the Cloud Storage settings page: the innermost element
 * holding both the storage's title and its "Sync Storage" button.
 */
export function storageCard(page, title) {
  return page
    .locator("div")
    .filter({ has: page.getByText(title, { exact: true }) })
    .filter({ has: page.getByRole("button", { name: "Sync Storage" }) })
    .last();
}

/**
 * A request to Label Studio's API with the page's session, as its own frontend sends it
 * (the CSRF header from the cookie); returns the status and the body text.
 */
export async function sessionRequest(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
      const response = await fetch(path, {
        method,
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, text: await response.text() };
    },
    { method, path, body },
  );
}

/**
 * The file URI behind a value of task data as Label Studio's API shows it: its proxy URL
 * (`/tasks/<id>/resolve/?fileuri=<base64>`) names the URI in `fileuri`; anything else is itself.
 */
export function proxiedUri(value, base = "http://localhost") {
  if (typeof value !== "string") return value;
  const url = new URL(value, base);
  return url.searchParams.has("fileuri") ? Buffer.from(url.searchParams.get("fileuri"), "base64").toString("utf8") : value;
}

/**
 * The labeling screen's image stage (Konva) as laid out on screen: waits (up to `timeout`)
 * until it is wider than 100 px, then returns its bounding box (null when it is not there).
 */
export async function labelingStage(page, timeout = 20_000) {
  const selector = ".lsf-main-view .konvajs-content";
  await page
    .waitForFunction((selector) => (document.querySelector(selector)?.getBoundingClientRect().width ?? 0) > 100, selector, { timeout })
    .catch(() => {});
  return page.locator(selector).first().boundingBox({ timeout: 5_000 }).catch(() => null);
}

/** Waits until the labeling screen's image has loaded (its bytes came through the storage proxy). */
export async function waitForLabelingImage(page, timeout = 60_000) {
  await page.waitForFunction(
    () => {
      const img = document.querySelector(".lsf-main-view .lsf-image img");
      return img && img.complete && img.naturalWidth > 0;
    },
    null,
    { timeout },
  );
}
