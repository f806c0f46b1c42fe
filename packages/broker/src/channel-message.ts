/**
 * What travels on a session channel: `streamId \n seq \n frameJson`.
 * The header lets a gateway order and dedupe without parsing the frame, and forward the frame bytes as they came.
 */
export interface ChannelMessage {
  streamId: string;
  seq: number;
  frame: string;
}

export function encodeChannelMessage(streamId: string, seq: number, frame: string): string {
  return `${streamId}\n${seq}\n${frame}`;
}

/** Returns undefined for anything that is not a well-formed message, so a stray publish cannot crash a gateway. */
export function decodeChannelMessage(payload: string): ChannelMessage | undefined {
  const first = payload.indexOf("\n");
  if (first <= 0) return undefined;
  const second = payload.indexOf("\n", first + 1);
  if (second < 0) return undefined;
  const seqText = payload.slice(first + 1, second);
  if (!/^\d{1,15}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  return { streamId: payload.slice(0, first), seq, frame: payload.slice(second + 1) };
}
