/**
 * Browser entry point, bundled into
 * label_studio_pachyderm/static/label_studio_pachyderm/pachyderm-provider.js and
 * loaded by the plugin's base.html after Label Studio's own scripts.
 *
 * It adds the Pachyderm provider to the Cloud Storage wizard of a stock,
 * pip-installed Label Studio (see runtime/attach.ts for how and when), and corrects
 * the wizard's own wording for it (runtime/touch-ups.ts); on the labeling screen, it
 * says why a file from Pachyderm does not load (runtime/media-errors.ts); in the Data
 * Manager, it names Label Studio's own "{ }" column (runtime/data-manager.ts); on a target
 * storage's card with "Promote to" set, it offers the labeling rounds (runtime/rounds.ts); on
 * every Pachyderm storage card, it shows what the storage's meta says: what a source watches,
 * the changes a target has waiting, their errors (runtime/card-status.ts).
 */
import { pachydermProvider } from "./pachyderm";
import { attachProvider } from "./runtime/attach";
import { watchSourceColumn } from "./runtime/data-manager";
import { watchMediaErrors } from "./runtime/media-errors";
import { watchCardStatus } from "./runtime/card-status";
import { watchRoundsPanels } from "./runtime/rounds";
import { watchWizards } from "./runtime/touch-ups";

const GUARD = "__labelStudioPachydermProvider";

type Host = typeof globalThis & { [GUARD]?: ReturnType<typeof attachProvider> };

function start(): void {
  const host = globalThis as Host;
  // The template could be rendered with the script twice; one observer is enough.
  if (host[GUARD]) return;
  host[GUARD] = attachProvider(pachydermProvider);
  // Pachyderm's words where the wizard draws its own (runtime/touch-ups.ts).
  watchWizards();
  // The reason a file from Pachyderm is not shown, in the labeling screen's error box.
  watchMediaErrors();
  // A header for the Data Manager's unlabeled "{ }" column (runtime/data-manager.ts).
  watchSourceColumn();
  // "Promote round" and the rounds on a Pachyderm target storage's card (runtime/rounds.ts).
  watchRoundsPanels();
  // What a storage's meta says, on its card: watching, changes waiting, errors (runtime/card-status.ts).
  watchCardStatus();
}

if (document.body) start();
else document.addEventListener("DOMContentLoaded", start, { once: true });
