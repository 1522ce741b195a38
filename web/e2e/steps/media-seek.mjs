/**
 * Audio through the storage proxy, as the labeling screen plays it: an <audio> element in
 * Label Studio's page (the browser's session) loads a pfs:// WAV from
 * /tasks/<id>/resolve/, then seeks near the end. The browser must ask with
 * `Range: bytes=N-` and get 206 with the matching Content-Range; the element must reach
 * the seek position and report no error. The WAV is generated here (no download).
 *
 * @param ctx the walkthrough's context (see walkthrough.spec.mjs); uses ids.project and ids.task.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { proxiedUri, sessionRequest as send } from "../lib/browser.mjs";

// 60 s of 44.1 kHz stereo 16-bit (~10 MiB): larger than Label Studio's 8 MiB range cap, so
// a seek to the end is a request of its own.
const WAV_SCRIPT = `
import math, struct, sys, wave
rate, seconds = 44100, 60
frame = lambda i: struct.pack('<hh', int(8000 * math.sin(i * 0.05)), int(8000 * math.sin(i * 0.07)))
period = b''.join(frame(i) for i in range(rate))  # one second, repeated
with wave.open(sys.argv[1], 'wb') as out:
    out.setnchannels(2); out.setsampwidth(2); out.setframerate(rate)
    out.writeframes(period * seconds)
`;

export async function mediaSeekSteps(ctx, { repo, folder }) {
  const { page, api, step, expect, note, ids, pfs } = ctx;

  await step("an audio task seeks through the proxy: the <audio> element asks Range: bytes=N- and gets 206", async () => {
    const dir = mkdtempSync(join(tmpdir(), "media-seek-"));
    const local = join(dir, "seek.wav");
    let size;
    try {
      execFileSync(ctx.python, ["-c", WAV_SCRIPT, local], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
      size = statSync(local).size;
      pfs("put-file", `${repo}@master:/${folder}/seek.wav`, "-f", local, "-m", "an audio file for the seek check");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const labeled = await api(`/api/tasks/${ids.task}`);
    const audioUri = `pfs://default/${repo}@master/${folder}/seek.wav`;
    const imported = await send(page, "POST", `/api/projects/${ids.project}/import`, [{ image: labeled.data.image, audio: audioUri }]);
    expect(imported.status === 201, `importing the audio task answered ${imported.status}`, imported.text.slice(0, 300));
    const tasks = await api(`/api/tasks?project=${ids.project}&page_size=100`);
    const task = (tasks.tasks ?? tasks).find((t) => proxiedUri(t.data?.audio) === audioUri);
    expect(task, "the audio task exists", (tasks.tasks ?? tasks).map((t) => t.data));

    // The URL Label Studio itself gives the labeling screen for this task's audio.
    const url = task.data.audio;
    expect(url.startsWith(`/tasks/${task.id}/resolve/?fileuri=`), "Label Studio serves the audio through its proxy URL", url);
    const answers = [];
    const onResponse = (response) => {
      if (!response.url().includes(`/tasks/${task.id}/resolve/`)) return;
      answers.push({ range: response.request().headers().range ?? null, status: response.status(),
        contentRange: response.headers()["content-range"] ?? null });
    };
    page.on("response", onResponse);
    let played;
    try {
      played = await page.evaluate(async (src) => {
        const audio = new Audio();
        audio.preload = "auto";
        const event = (name) => new Promise((resolve, reject) => {
          audio.addEventListener(name, () => resolve(), { once: true });
          audio.addEventListener("error", async () => {
            // Say what the proxy answered, not only that the element gave up.
            const probe = await fetch(src, { headers: { Range: "bytes=0-15" } }).catch((error) => ({ status: String(error) }));
            const head = probe.arrayBuffer ? new Uint8Array(await probe.arrayBuffer()).slice(0, 16) : [];
            reject(new Error(`media error ${audio.error?.code}: ${audio.error?.message}; GET ${src} with Range bytes=0-15 ` +
              `answered ${probe.status} ${probe.headers?.get("content-type") ?? ""}, first bytes ${Array.from(head).join(",")}`));
          }, { once: true });
        });
        const loaded = event("loadedmetadata");
        audio.src = src;
        await loaded;
        const duration = audio.duration;
        const seeked = event("seeked");
        audio.currentTime = duration - 2;
        await seeked;
        return { duration, currentTime: audio.currentTime };
      }, url);
    } finally {
      page.off("response", onResponse);
    }
    expect(Math.abs(played.duration - 60) < 0.5, "the element read the WAV's duration through the proxy", played);
    expect(played.currentTime > 55, "the element reached the seek position", played);
    const seeks = answers.filter((a) => a.range && !/^bytes=0-/.test(a.range));
    expect(seeks.length > 0, "the seek was a Range request from a later byte", answers);
    for (const answer of seeks) {
      const start = Number(answer.range.match(/^bytes=(\d+)-/)[1]);
      expect(answer.status === 206, `Range ${answer.range} answered 206`, answer);
      expect(new RegExp(`^bytes ${start}-\\d+/${size}$`).test(answer.contentRange ?? ""),
        `Content-Range of ${answer.range} starts at ${start} of ${size}`, answer);
    }
    note(`requests: ${answers.map((a) => `${a.range ?? "(no Range)"} -> ${a.status} ${a.contentRange ?? ""}`).join("; ")}`);
  });
}
