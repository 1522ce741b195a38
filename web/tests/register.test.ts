// @vitest-environment jsdom
import { act } from "react";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { pachydermProvider } from "../src/pachyderm";
import { type Attachment, WARNINGS, attachProvider } from "../src/runtime/attach";
import {
  builtInProviders,
  openLegacyForm,
  openWizard,
  registry,
  resetRegistry,
  settle,
  type OpenModal,
  type ProviderMap,
} from "./support/fake-wizard";

const tiles = () =>
  Array.from(document.querySelectorAll('[data-testid^="storage-provider-"]')).map((tile) => tile.getAttribute("data-testid"));

let attachment: Attachment | null = null;
let modals: OpenModal[] = [];

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

afterEach(async () => {
  attachment?.stop();
  attachment = null;
  for (const modal of modals) await modal.close();
  modals = [];
  resetRegistry();
  document.body.innerHTML = "";
});

async function track(modal: Promise<OpenModal>): Promise<OpenModal> {
  const opened = await modal;
  modals.push(opened);
  return opened;
}

describe("attachProvider", () => {
  it("adds the tile to the wizard open at that moment and registers the provider for its steps", async () => {
    const warn = vi.fn();
    const providers = builtInProviders();
    attachment = attachProvider(pachydermProvider, { warn });
    await track(openWizard(providers));
    await settle();

    expect(attachment.state()).toBe("attached");
    expect(tiles()).toEqual(["storage-provider-s3", "storage-provider-gcs", "storage-provider-pachyderm"]);
    expect(registry.pachyderm).toBe(pachydermProvider);
    expect((providers as ProviderMap).pachyderm).toBe(pachydermProvider);
    expect(document.querySelector('[data-testid="storage-provider-pachyderm"] svg[aria-label="Pachyderm"]')).not.toBeNull();
    expect(warn).not.toHaveBeenCalled();
  });

  it("lets later wizards list it natively, with no further work", async () => {
    const providers = builtInProviders();
    attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
    const first = await track(openWizard(providers));
    await settle();
    await first.close();
    modals = [];
    resetRegistry();

    await track(openWizard(providers));
    expect(tiles()).toContain("storage-provider-pachyderm");
    expect(registry.pachyderm).toBe(pachydermProvider);
  });

  it("loads a Pachyderm storage edited in the first wizard of the page instead of an unknown provider", async () => {
    attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
    await track(openWizard(builtInProviders(), { type: "pachyderm", repo: "images" }));
    await settle();

    expect(attachment.state()).toBe("attached");
    expect(document.querySelector('[data-testid="details"]')?.textContent).toBe("Pachyderm: images");
  });

  it("finds a wizard that was already open when the script started", async () => {
    await track(openWizard(builtInProviders()));
    // The refresh happens synchronously here, so it is wrapped like any React update in a test.
    await act(async () => {
      attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
    });
    await settle();
    expect(attachment?.state()).toBe("attached");
    expect(tiles()).toContain("storage-provider-pachyderm");
  });

  it("changes nothing when the provider is already built in", async () => {
    const providers = { ...builtInProviders(), pachyderm: pachydermProvider } as ProviderMap;
    const before = { ...providers };
    attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
    await track(openWizard(providers));
    await settle();
    expect(attachment.state()).toBe("present");
    expect(providers).toEqual(before);
  });

  it("ignores unrelated portals and keeps waiting", async () => {
    const warn = vi.fn();
    attachment = attachProvider(pachydermProvider, { warn });
    const popup = document.createElement("div");
    popup.textContent = "tooltip";
    document.body.appendChild(popup);
    await settle();
    expect(attachment.state()).toBe("waiting");
    expect(warn).not.toHaveBeenCalled();
  });
});

describe("attachProvider failing safe", () => {
  it("warns once and stops when the storage modal is the legacy form", async () => {
    const warn = vi.fn();
    attachment = attachProvider(pachydermProvider, { warn });
    await track(openLegacyForm());
    await settle();
    await track(openLegacyForm());
    await settle();
    expect(attachment.state()).toBe("failed");
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(`[label-studio-pachyderm] ${WARNINGS.legacyForm}`);
  });

  it("warns once and changes nothing when tiles show without reachable React internals", async () => {
    const warn = vi.fn();
    attachment = attachProvider(pachydermProvider, { warn });
    const modal = document.createElement("div");
    modal.innerHTML = '<button data-testid="storage-provider-s3">Amazon S3</button>';
    document.body.appendChild(modal);
    await settle();
    expect(attachment.state()).toBe("failed");
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(`[label-studio-pachyderm] ${WARNINGS.unreachable}`);
    expect(tiles()).toEqual(["storage-provider-s3"]);
  });

  it("when the open wizard cannot be refreshed, adds the entry only after that modal closes", async () => {
    const providers = builtInProviders();
    // Simulates a wizard whose hooks do not look like Label Studio 1.23's.
    const internals = await import("../src/runtime/wizard");
    const plan = vi.spyOn(internals, "planRefresh").mockReturnValue(null);
    attachment = attachProvider(pachydermProvider, { warn: vi.fn() });
    const modal = await track(openWizard(providers));
    await settle();
    expect(attachment.state()).toBe("deferred");
    expect("pachyderm" in providers).toBe(false);

    await modal.close();
    modals = [];
    await settle();
    expect(attachment.state()).toBe("attached");
    expect((providers as ProviderMap).pachyderm).toBe(pachydermProvider);
    plan.mockRestore();
  });
});
