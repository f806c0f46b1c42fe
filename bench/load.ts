import { once } from "node:events";
import { WebSocket } from "ws";

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export interface LatencyRecorder {
  delivered: number;
  samples: number[];
  recording: boolean;
}

export const newRecorder = (): LatencyRecorder => ({ delivered: 0, samples: [], recording: false });

/**
 * Opens a socket, sends `hello` (when given), waits for the first frame (welcome), then records every chunk:
 * the chunk's delta carries the publisher's send time, so latency = arrival − send.
 */
export async function openClient(
  url: string,
  hello: unknown | undefined,
  recorder: LatencyRecorder,
): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  // Listen before the socket opens: a server that greets at once may send its first frame in the same read.
  let welcomed: () => void = () => undefined;
  const welcome = new Promise<void>((resolve) => {
    welcomed = resolve;
  });
  let greeted = false;
  ws.on("message", (data: Buffer) => {
    if (!greeted) {
      greeted = true;
      welcomed();
      return;
    }
    if (!recorder.recording) return;
    const text = data.toString();
    // Cheap extraction of the delta (the publisher writes `"delta":"<ms>"` last): no JSON.parse per chunk here,
    // so the load generator spends its CPU on sockets rather than parsing.
    const at = text.lastIndexOf('"delta":"');
    if (at < 0) return;
    const sent = Number(text.slice(at + 9, text.length - 2));
    recorder.delivered++;
    if (recorder.samples.length < 2_000_000) recorder.samples.push(nowMs() - sent);
  });
  await once(ws, "open");
  if (hello) ws.send(JSON.stringify(hello));
  await welcome;
  return ws;
}

/**
 * Publishes `rate` chunks per second to each of `streams` targets for `seconds`, spread evenly over 10 ms ticks,
 * without waiting for replies (the client pipelines). Returns the number published.
 */
export async function publishLoad(
  streams: number,
  rate: number,
  seconds: number,
  publish: (stream: number) => void,
): Promise<number> {
  const perTick = (streams * rate) / 100;
  let carry = 0;
  let next = 0;
  let published = 0;
  const end = nowMs() + seconds * 1000;
  let tickAt = nowMs();
  while (nowMs() < end) {
    carry += perTick;
    while (carry >= 1) {
      publish(next);
      next = (next + 1) % streams;
      carry -= 1;
      published++;
    }
    tickAt += 10;
    const wait = tickAt - nowMs();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
  }
  return published;
}
