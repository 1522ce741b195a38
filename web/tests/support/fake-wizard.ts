/**
 * A stand-in for Label Studio's storage modal, built on the same facts the
 * registration relies on (see src/runtime/wizard.ts), rendered by real React 18
 * the way Label Studio renders modals: a separate root whose content is a
 * portal into <body>. It lets the registration be tested against React's real
 * fiber, hook and effect structures without Label Studio's code.
 */
import { createElement, type ComponentType, useEffect, useState } from "react";
import { createPortal } from "react-dom";
import { type Root, createRoot } from "react-dom/client";
import { act } from "react";

interface ProviderLike {
  name: string;
  title: string;
  icon?: ComponentType<{ className?: string }>;
  fields: unknown[];
  layout: unknown[];
}

export type ProviderMap = Record<string, ProviderLike>;

/** Where the wizard looks providers up; filled from the map by an effect on mount. */
export const registry: Record<string, ProviderLike> = {};

export function resetRegistry(): void {
  for (const name of Object.keys(registry)) delete registry[name];
}

function builtIn(name: string, title: string): ProviderLike {
  return { name, title, fields: [{ name: "bucket", type: "text" }], layout: [{ fields: ["bucket"] }] };
}

export function builtInProviders(): ProviderMap {
  return { s3: builtIn("s3", "Amazon S3"), gcs: builtIn("gcs", "Google Cloud Storage") };
}

interface WizardProps {
  providers: ProviderMap;
  storage?: { type: string; [key: string]: unknown };
  storageTypes: unknown[];
  target: "import" | "export";
}

function Wizard({ providers, storage }: WizardProps) {
  const [form, setForm] = useState({ currentStep: 0, formData: { provider: "s3" } as Record<string, unknown> });
  const [loaded, setLoaded] = useState(false);

  useEffect(() => {
    for (const [name, config] of Object.entries(providers)) registry[name] = config;
  }, [providers]);

  useEffect(() => {
    if (!storage || loaded || !registry[storage.type]) return;
    // As Label Studio 1.23 does: every secret field (accessKey) shows its mask, token stored or not.
    const masked: Record<string, unknown> = {};
    for (const field of registry[storage.type].fields as { name?: string; accessKey?: boolean }[]) {
      if (field.accessKey && field.name) masked[field.name] = "••••••••••••••••";
    }
    setForm((previous) => ({ ...previous, formData: { ...storage, ...masked, provider: storage.type } }));
    setLoaded(true);
  }, [storage, loaded]);

  if (storage) {
    const provider = registry[form.formData.provider as string];
    const text = loaded && provider ? `${provider.title}: ${String(form.formData.repo)}` : "Unknown provider";
    return createElement(
      "div",
      null,
      createElement("p", { "data-testid": "details" }, text),
      loaded
        ? [
            createElement("input", { key: "a", name: "pachd_address", readOnly: true, value: String(form.formData.pachd_address ?? "") }),
            createElement("input", { key: "t", name: "auth_token", type: "password", readOnly: true, value: String(form.formData.auth_token ?? "") }),
          ]
        : null,
    );
  }
  return createElement(
    "div",
    { "data-testid": "grid" },
    Object.values(providers).map((provider) =>
      createElement(
        "button",
        { key: provider.name, "data-testid": `storage-provider-${provider.name}` },
        provider.icon ? createElement(provider.icon, { className: "w-8 h-8" }) : null,
        provider.title,
      ),
    ),
  );
}

/** The legacy, server-driven form: same modal, no provider map. */
function LegacyForm(_props: { storageTypes: unknown[]; target: string }) {
  return createElement("form", { "data-testid": "legacy-form" });
}

function ModalShell({ children }: { children: unknown }) {
  return createPortal(createElement("div", { className: "modal" }, children as never), document.body);
}

export interface OpenModal {
  close(): Promise<void>;
}

async function open(body: unknown): Promise<OpenModal> {
  const holder = document.createElement("div");
  document.body.appendChild(holder);
  let root: Root | null = null;
  await act(async () => {
    root = createRoot(holder);
    root.render(createElement(ModalShell, null, body as never));
  });
  return {
    close: async () => {
      await act(async () => root?.unmount());
      holder.remove();
    },
  };
}

export function openWizard(providers: ProviderMap, storage?: WizardProps["storage"]): Promise<OpenModal> {
  return open(createElement(Wizard, { providers, storage, storageTypes: [], target: "import" }));
}

export function openLegacyForm(): Promise<OpenModal> {
  return open(createElement(LegacyForm, { storageTypes: [], target: "import" }));
}

/** Lets MutationObserver callbacks and the renders they trigger run. */
export async function settle(): Promise<void> {
  await act(async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}
