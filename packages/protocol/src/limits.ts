/** Size and time limits that are part of the wire contract (docs/protocol.md). */
export const LIMITS = {
  /** REST bodies and WebSocket client frames, in bytes. */
  maxBodyBytes: 64 * 1024,
  maxFrameBytes: 64 * 1024,
  messageMaxChars: 32_000,
  clientMessageIdMaxChars: 64,
  /** The first WebSocket frame must be `hello` within this many milliseconds. */
  helloTimeoutMs: 10_000,
  /** A stream that cannot be finished ends with `done` + error within this bound. */
  streamFailureBoundMs: 30_000,
  /** Default time a stream's per-chunk history is kept (24 h). */
  historyTtlMs: 24 * 60 * 60 * 1000,
} as const;
