/**
 * The Pachyderm side of the walkthrough, driven the way a user would: the
 * package's pachctl-like `label-studio-pachyderm pfs ...` commands, and its
 * Python client (through pfs_fixture.py) to put the starting data in.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("./pfs_fixture.py", import.meta.url));

/**
 * @param {{ bin: string, python: string, address: string }} options
 *   bin: the `label-studio-pachyderm` console command; python: the interpreter
 *   that has the package installed; address: grpc://host:port of the PFS server.
 */
export function pfsTools({ bin, python, address }) {
  /** Runs `label-studio-pachyderm pfs VERB ...`; returns stdout, throws with stderr. */
  function pfs(...args) {
    try {
      return execFileSync(bin, ["pfs", ...args, "--pachd-address", address], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 60_000,
      });
    } catch (error) {
      const stderr = String(error.stderr ?? "").trim();
      throw new Error(`label-studio-pachyderm pfs ${args.join(" ")} failed: ${stderr || error.message}`);
    }
  }

  /**
   * Puts the starting data in with lib/pfs_fixture.py (one process: the images,
   * drawn by the package's own PNG generator, in one commit, and an empty target
   * repo); returns what it read back: the commit and each file's size and sha256.
   */
  function seed(spec) {
    try {
      const out = execFileSync(python, [FIXTURE, address, JSON.stringify(spec)], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 60_000,
      });
      return JSON.parse(out);
    } catch (error) {
      const stderr = String(error.stderr ?? "").trim();
      throw new Error(`seeding the PFS server failed: ${stderr || error.message}`);
    }
  }

  return { pfs, seed };
}
