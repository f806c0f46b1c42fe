/**
 * A stream event's JSON split around its seq, which only the append script knows.
 * `{"type":"chunk","streamId":"s","seq":` + 7 + `,"delta":"hi"}` gives the exact frame clients receive.
 */
export interface FrameParts {
  prefix: string;
  suffix: string;
}

export function frameParts(head: Record<string, unknown>, tail: Record<string, unknown>): FrameParts {
  const headJson = JSON.stringify(head);
  const tailJson = JSON.stringify(tail);
  return {
    prefix: `${headJson.slice(0, -1)},"seq":`,
    suffix: tailJson === "{}" ? "}" : `,${tailJson.slice(1)}`,
  };
}

/**
 * A `chunk`'s whole frame, the hot path (one per token): the bytes of frameParts with the seq in between, without
 * building and serialising two objects, only the two strings JSON-encoded. A chunk's writer knows its seq (it is
 * alone under its fence), so the chunk script gets the frame whole and builds nothing per chunk.
 */
export function chunkFrame(streamId: string, seq: number, delta: string): string {
  return `{"type":"chunk","streamId":${JSON.stringify(streamId)},"seq":${seq},"delta":${JSON.stringify(delta)}}`;
}
