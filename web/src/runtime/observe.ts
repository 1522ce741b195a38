/**
 * Runs `scan` now and after every change under <body>, for the page's life: Label Studio draws its
 * screens again on every visit, so a touch-up made once would be lost. A scan that throws means
 * the page is not what the touch-up expects: it stops watching rather than fail on every change.
 * Returns the function that stops it.
 */
export function keepScanning(doc: Document, scan: () => void, options: { characterData?: boolean } = {}): () => void {
  const observer = new MutationObserver(() => {
    try {
      scan();
    } catch {
      observer.disconnect();
    }
  });
  observer.observe(doc.body, { childList: true, subtree: true, characterData: options.characterData ?? false });
  scan();
  return () => observer.disconnect();
}
