/**
 * Test helper: a loopback HTTP server that speaks the Chat Completions streaming wire format, with hooks to
 * misbehave (errors, cuts, stalls, 429s), recording what it received and whether the client hung up.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  /** The parsed JSON body. */
  body: Record<string, unknown>;
}

export interface FakeExchange {
  /** 0 for the first request this server received, 1 for the second, ... */
  index: number;
  req: IncomingMessage;
  res: ServerResponse;
  body: Record<string, unknown>;
  /** Starts an SSE response (200, text/event-stream). */
  startEvents(): void;
  /** Writes one `data: <json>` event; `\r\n` line endings unless told otherwise. */
  data(payload: unknown, eol?: "\r\n" | "\n"): void;
  /** Writes `data: [DONE]`. */
  done(eol?: "\r\n" | "\n"): void;
  /** Writes a `: keep-alive` comment (SSE comments are not events). */
  keepAlive(): void;
  /** Kills the TCP connection without finishing the chunked body (a crashed or cut-off upstream). */
  cut(): void;
  /** True once the client went away or the server ended/cut the response: stop writing. */
  readonly closed: boolean;
}

export interface FakeOpenAiServer {
  /** e.g. http://127.0.0.1:54321/v1 */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Resolves when a client disconnects before the server ended (or cut) the response. */
  clientDisconnected: Promise<void>;
  close(): Promise<void>;
}

export type FakeHandler = (exchange: FakeExchange) => void | Promise<void>;

/** A streaming chunk as OpenAI sends it, plus fields the client must ignore. */
export function chunk(
  content: string | null,
  finishReason: string | null = null,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "fake-model",
    system_fingerprint: "fp_fake",
    x_unknown: { nested: [1, 2, 3] },
    choices: [
      {
        index: 0,
        delta: content === null ? {} : { role: "assistant", content },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    ...extra,
  };
}

/** The final chunk sent when `stream_options.include_usage` is on. */
export function usageChunk(promptTokens: number, completionTokens: number): Record<string, unknown> {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "fake-model",
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  };
}

export async function startFakeOpenAi(handler: FakeHandler): Promise<FakeOpenAiServer> {
  const requests: RecordedRequest[] = [];
  let resolveDisconnected!: () => void;
  const clientDisconnected = new Promise<void>((resolve) => {
    resolveDisconnected = resolve;
  });

  const server = createServer(async (req, res) => {
    const raw: Buffer[] = [];
    for await (const part of req) raw.push(part as Buffer);
    const text = Buffer.concat(raw).toString("utf8");
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    const index = requests.length;
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });

    let serverCut = false;
    let closed = false;
    // 'close' before the response ended, and not because we cut it ourselves: the client hung up.
    res.on("close", () => {
      closed = true;
      if (!res.writableEnded && !serverCut) resolveDisconnected();
    });
    const write = (s: string) => {
      if (!closed && !res.writableEnded) res.write(s);
    };
    const exchange: FakeExchange = {
      index,
      req,
      res,
      body,
      startEvents() {
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        // Push the headers out now, as real servers do, instead of waiting for the first write.
        res.flushHeaders();
      },
      data(payload, eol = "\r\n") {
        write(`data: ${JSON.stringify(payload)}${eol}${eol}`);
      },
      done(eol = "\r\n") {
        write(`data: [DONE]${eol}${eol}`);
      },
      keepAlive() {
        write(": keep-alive\r\n\r\n");
      },
      cut() {
        serverCut = true;
        res.socket?.destroy();
      },
      get closed() {
        return closed || res.writableEnded;
      },
    };
    await handler(exchange);
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    clientDisconnected,
    close: () =>
      new Promise<void>((resolve) => {
        // Keep-alive sockets from the client's pool would otherwise hold close() open.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
