/**
 * Numbered steps for a walkthrough: each prints "ok"/"FAIL" with its duration.
 *
 * Two kinds of checks:
 * - `expect`: the step cannot go on without it (no project, no task...). It
 *   throws, and the walkthrough stops there.
 * - `check`: a wrong result that later steps do not depend on (a wrong number
 *   on a card). It is reported at once, the step is marked FAIL, and the
 *   walkthrough carries on so one run shows every problem.
 * Either way the exit code is non-zero and the summary names the failed steps.
 */

/** Thrown by `expect`; its message is what a reader needs to see in the log. */
export class CheckFailed extends Error {}

function describe(message, detail) {
  if (detail === undefined) return message;
  return `${message}\n       got: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`;
}

/** Stops the current step with `message` (plus what was found) unless `condition` holds. */
export function expect(condition, message, detail) {
  if (!condition) throw new CheckFailed(describe(message, detail));
}

export function createRunner({ onFailure } = {}) {
  const started = Date.now();
  const outcomes = [];
  let number = 0;
  let current = null;

  const seconds = (from) => ((Date.now() - from) / 1000).toFixed(1);

  /** Runs one step. A failed `expect` (or any error) reports it, calls onFailure, and rethrows. */
  async function step(title, body) {
    number += 1;
    const label = `step ${number}: ${title}`;
    const at = Date.now();
    current = { label, failedChecks: 0 };
    console.log(`---- ${label}`);
    try {
      const value = await body();
      if (current.failedChecks) {
        console.log(`FAIL ${label} (${seconds(at)}s): ${current.failedChecks} check(s) failed, see above`);
        outcomes.push({ label, ok: false });
        if (onFailure) await onFailure(number, title).catch(() => {});
      } else {
        console.log(`ok   ${label} (${seconds(at)}s)`);
        outcomes.push({ label, ok: true });
      }
      return value;
    } catch (error) {
      // Playwright errors carry a long call log; its first lines say what was awaited.
      const lines = String(error?.message ?? error).split("\n").slice(0, error instanceof CheckFailed ? 20 : 8);
      console.log(`FAIL ${label} (${seconds(at)}s)\n     ${lines.join("\n     ")}`);
      outcomes.push({ label, ok: false });
      if (onFailure) await onFailure(number, title).catch(() => {});
      const stop = new Error(`walkthrough stopped at ${label}`);
      stop.reported = true;
      throw stop;
    } finally {
      current = null;
    }
  }

  /** Reports a failed check in the current step without stopping the walkthrough. */
  function check(condition, message, detail) {
    if (condition) return true;
    if (current) current.failedChecks += 1;
    console.log(`     CHECK FAILED: ${describe(message, detail).replace(/\n/g, "\n     ")}`);
    return false;
  }

  /** Logs a detail inside the current step. */
  function note(text) {
    console.log(`     ${text}`);
  }

  function failed() {
    return outcomes.some((outcome) => !outcome.ok);
  }

  function summary() {
    const passed = outcomes.filter((outcome) => outcome.ok).length;
    console.log(`\n${passed}/${outcomes.length} step(s) passed in ${seconds(started)}s`);
    for (const outcome of outcomes) console.log(`  ${outcome.ok ? "✓" : "✗"} ${outcome.label}`);
  }

  return { step, check, note, failed, summary };
}
