/**
 * Browser entry point, bundled into
 * label_studio_pachyderm/static/label_studio_pachyderm/pachyderm-provider.js and
 * loaded by the plugin's base.html after Label Studio's own scripts.
 *
 * It adds the Pachyderm provider to the Cloud Storage wizard of a stock,
 * pip-installed Label Studio (see runtime/attach.ts for how and when).
 */
import { pachydermProvider } from "./pachyderm";
import { attachProvider } from "./runtime/attach";

const GUARD = "__labelStudioPachydermProvider";

type Host = typeof globalThis & { [GUARD]?: ReturnType<typeof attachProvider> };

function start(): void {
  const host = globalThis as Host;
  // The template could be rendered with the script twice; one observer is enough.
  if (host[GUARD]) return;
  host[GUARD] = attachProvider(pachydermProvider);
}

if (document.body) start();
else document.addEventListener("DOMContentLoaded", start, { once: true });
