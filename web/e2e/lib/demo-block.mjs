/**
 * The block scripts/demo.sh prints once Label Studio answers, read the way a person
 * reads it: the "Open:" URL, the "Log in:" email / password, the "Then run:" command.
 * The walkthrough follows exactly these, so the printed steps and the behaviour
 * cannot drift apart.
 */

/** Parses demo.sh's output; throws naming the line it could not find. */
export function parseDemoBlock(output) {
  const line = (label) => {
    const match = output.match(new RegExp(`^\\s*${label}:\\s+(.+?)\\s*$`, "m"));
    if (!match) throw new Error(`scripts/demo.sh printed no "${label}:" line:\n${output}`);
    return match[1];
  };
  const url = new URL(line("Open"));
  const login = line("Log in").match(/^(\S+@\S+) \/ (\S+)$/);
  if (!login) throw new Error(`the "Log in:" line is not "EMAIL / PASSWORD": ${line("Log in")}`);
  const command = line("Then run").split(/\s+/);
  const project = Number(url.pathname.match(/^\/projects\/(\d+)\//)?.[1]);
  return { url, project, email: login[1], password: login[2], command };
}

/**
 * The lines of demo.sh's output that are noise: anything before the block that is not one
 * of its own "==> " steps or the seed's indented lines, a line printed twice in a row, a
 * warning or a traceback. A newcomer should see the steps, then the block, nothing else.
 */
export function demoNoise(output) {
  const lines = output.split("\n");
  const blockStart = lines.findIndex((l) => /^\s*Label Studio is ready:/.test(l));
  const noise = [];
  lines.forEach((l, i) => {
    if (/warning|traceback|error/i.test(l)) noise.push(l);
    else if (i > 0 && l.trim() && l === lines[i - 1]) noise.push(`twice: ${l}`);
    else if ((blockStart < 0 || i < blockStart) && l.trim() && !/^(==> |    )/.test(l)) noise.push(l);
  });
  return noise;
}
