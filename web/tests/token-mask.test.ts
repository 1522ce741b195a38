// @vitest-environment jsdom
import { act } from "react";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { pachydermProvider } from "../src/pachyderm";
import { type Attachment, attachProvider } from "../src/runtime/attach";
import { watchWizards } from "../src/runtime/touch-ups";
import { SECRET_MASK } from "../src/runtime/wizard";
import { builtInProviders, openWizard, resetRegistry, settle, type OpenModal } from "./support/fake-wizard";

let attachment: Attachment | null = null;
let stopWatching: (() => void) | null = null;
let modal: OpenModal | null = null;

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

afterEach(async () => {
  stopWatching?.();
  attachment?.stop();
  await modal?.close();
  attachment = null;
  stopWatching = null;
  modal = null;
  resetRegistry();
  document.body.innerHTML = "";
});

/** The auth token field of a Pachyderm storage opened for editing, once the page has settled. */
async function editedTokenField(storage: Record<string, unknown>): Promise<string | null> {
  attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
  stopWatching = watchWizards();
  modal = await openWizard(builtInProviders(), { type: "pachyderm", repo: "images", pachd_address: "grpc://pachd:30650", ...storage });
  // The touch-ups run one animation frame after a change: give them a few.
  for (let i = 0; i < 5; i += 1) {
    await settle();
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 40));
    });
  }
  return document.querySelector<HTMLInputElement>('input[name="auth_token"]')?.value ?? null;
}

describe("the edit form's auth token", () => {
  it("is empty for a storage saved without a token", async () => {
    expect(await editedTokenField({ auth_token_set: false })).toBe("");
  });

  it("stays masked for a storage that has a token (the token itself is never in the page)", async () => {
    expect(await editedTokenField({ auth_token_set: true })).toBe(SECRET_MASK);
  });

  it("stays masked when the server does not say (a storage of an older plugin)", async () => {
    expect(await editedTokenField({})).toBe(SECRET_MASK);
  });
});
