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
 * frameParts of a `chunk`, the hot path (one per token): the same bytes without building and serialising two
 * objects, only the two strings JSON-encoded.
 */
export function chunkFrameParts(streamId: string, delta: string): FrameParts {
  return {
    prefix: `{"type":"chunk","streamId":${JSON.stringify(streamId)},"seq":`,
    suffix: `,"delta":${JSON.stringify(delta)}}`,
  };
}
