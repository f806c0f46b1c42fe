import { expect } from "vitest";
import type { ChatClient } from "./chat-client";

export interface ClientStream {
  client: ChatClient;
  streamId: string;
  conversationId: string;
}

/** Resolves once every stream has delivered at least `seq` (so a failure hits them mid-answer). */
export async function waitForProgress(streams: ClientStream[], seq = 3): Promise<void> {
  await Promise.all(
    streams.map(({ client, streamId }) => {
      if (client.view(streamId).lastSeq >= seq) return undefined;
      return client.next((f) => "streamId" in f && f.streamId === streamId && "seq" in f && f.seq >= seq);
    }),
  );
}

/** Reconnects (through whatever URL the client has) and resumes every unfinished stream, as a real client does. */
export async function reconnectAndResume(clients: ChatClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.reconnect()));
}

/**
 * The delivery guarantees, checked per stream: it ended with done, seqs arrived in order without gap or duplicate,
 * and the text the client assembled equals what history stores, byte for byte.
 */
export async function expectExactAnswers(
  streams: ClientStream[],
  finishReason = "stop",
  timeoutMs = 30_000,
): Promise<void> {
  for (const { client, streamId, conversationId } of streams) {
    const view = await client.done(streamId, timeoutMs);
    expect(view.violations, `stream ${streamId}`).toEqual([]);
    expect(view.done?.finishReason, `stream ${streamId}`).toBe(finishReason);
    const history = await client.history(conversationId);
    const message = history.messages.find((m) => m.streamId === streamId);
    expect(message?.content, `stream ${streamId}`).toBe(view.text);
  }
}
