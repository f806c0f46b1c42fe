import type { ChannelMessage, StoredEvent, StreamSnapshot } from "@chatgrid/broker";
import { CloseCode, ErrorCode } from "@chatgrid/protocol";

/** What a connection needs from its socket. */
export interface Transport {
  send(frame: string): void;
  close(code: number, reason: string): void;
  /** Bytes queued and not yet written to the network. */
  readonly bufferedAmount: number;
  readonly open: boolean;
}

/** What a connection needs from Redis to resume: history after a seq, and a snapshot when history is gone. */
export interface HistorySource {
  readAfter(streamId: string, afterSeq: number, count: number): Promise<StoredEvent[]>;
  snapshot(streamId: string): Promise<StreamSnapshot | undefined>;
}

export interface ConnectionCounters {
  delivered(count: number): void;
  replayed(count: number): void;
  gapFilled(): void;
  snapshot(): void;
  slowConsumer(): void;
  /** A history read failed: the detail goes here (log and metric), the client only gets a generic `error`. */
  historyFailed(streamId: string, error: unknown): void;
}

/** Per socket and stream: the last seq sent, and while history is being read, the live events held back. */
interface Cursor {
  last: number;
  held: ChannelMessage[] | undefined;
  /** A history read is running for this stream. */
  filling: boolean;
  done: boolean;
}

const PAGE = 500;
/** Cursors of ended streams kept to drop late duplicates; beyond this the oldest ended ones are forgotten. */
const MAX_ENDED_CURSORS = 256;

/**
 * One socket's delivery state (docs/architecture.md invariant 3). Live events pass straight through when they are the next
 * seq; a duplicate is dropped; a gap holds live events back, reads history from the last seq sent, merges, and
 * only then lets live events pass again. It never sends past a gap and never sends a seq twice.
 */
export class ClientConnection {
  /** Made with the first stream: an idle socket has none (docs/benchmarks.md). */
  private cursors: Map<string, Cursor> | undefined;
  private ended = 0;
  private closed = false;

  constructor(
    readonly sessionId: string,
    private readonly transport: Transport,
    private readonly history: HistorySource,
    private readonly maxBufferedBytes: number,
    private readonly counters: ConnectionCounters,
  ) {}

  /** A live event from the session channel. */
  deliver(message: ChannelMessage): void {
    let cursor = this.cursors?.get(message.streamId);
    if (!cursor) {
      // A stream this socket has not seen: it is sent from its beginning, so nothing of it is skipped.
      cursor = { last: -1, held: undefined, filling: false, done: false };
      this.cursorMap().set(message.streamId, cursor);
    }
    if (cursor.held) {
      cursor.held.push(message);
      return;
    }
    if (message.seq <= cursor.last) return;
    if (message.seq === cursor.last + 1) {
      this.sendEvent(cursor, message.frame, message.seq);
      this.counters.delivered(1);
      return;
    }
    this.counters.gapFilled();
    cursor.held = [message];
    void this.fill(message.streamId, cursor);
  }

  /**
   * Called as soon as a resume point arrives, before any await: from now on live events of the stream are held,
   * so none is sent from the wrong place while the ownership check and the history read run.
   */
  prepareResume(streamId: string, afterSeq: number | undefined): void {
    let cursor = this.cursors?.get(streamId);
    if (!cursor) {
      cursor = { last: afterSeq ?? -1, held: undefined, filling: false, done: false };
      this.cursorMap().set(streamId, cursor);
    } else if (afterSeq !== undefined && afterSeq > cursor.last) {
      cursor.last = afterSeq;
    }
    cursor.held ??= [];
  }

  /** Forgets a prepared resume that turned out not to be this session's stream. */
  abandonResume(streamId: string): void {
    const cursor = this.cursors?.get(streamId);
    if (cursor && !cursor.filling) this.cursors?.delete(streamId);
  }

  /** A prepared resume that could not run (Redis away): stop holding, or fill what was held meanwhile. */
  releaseResume(streamId: string): void {
    const cursor = this.cursors?.get(streamId);
    if (!cursor || cursor.filling) return;
    if (cursor.held && cursor.held.length > 0) void this.fill(streamId, cursor);
    else cursor.held = undefined;
  }

  /** A client's resume request; the caller has checked the stream belongs to this session. */
  resume(streamId: string, afterSeq: number | undefined): Promise<void> {
    this.prepareResume(streamId, afterSeq);
    const cursor = this.cursors!.get(streamId)!;
    if (cursor.filling) return Promise.resolve(); // the running read sends everything after `last`
    return this.fill(streamId, cursor);
  }

  /** After the node's subscription was restored: events may have been missed, so every open stream catches up. */
  catchUp(): void {
    if (!this.cursors) return;
    for (const [streamId, cursor] of this.cursors) {
      if (cursor.done || cursor.filling) continue;
      void this.fill(streamId, cursor);
    }
  }

  markClosed(): void {
    this.closed = true;
  }

  private cursorMap(): Map<string, Cursor> {
    if (!this.cursors) this.cursors = new Map();
    return this.cursors;
  }

  private async fill(streamId: string, cursor: Cursor): Promise<void> {
    let stalls = 0;
    cursor.filling = true;
    cursor.held ??= [];
    try {
      while (!this.closed && this.transport.open) {
        const before = cursor.last;
        let events = await this.history.readAfter(streamId, cursor.last, PAGE);
        const first = events[0];
        if (first && first.seq > cursor.last + 1) {
          // History no longer reaches back to our seq (further than its bound, or before a reset): send the text as a
          // snapshot (docs/redis.md "The history").
          await this.sendSnapshot(streamId, cursor);
        } else if (!first) {
          // Nothing after our seq: caught up, or the history expired, or events were written just after the read.
          const snap = await this.history.snapshot(streamId);
          if (snap && snap.seq > cursor.last) {
            // One script writes an event and the text together, so a history that still exists now holds snap.seq:
            // read it again, and send the whole text only if it is gone (docs/protocol.md, the snapshot event).
            events = await this.history.readAfter(streamId, cursor.last, PAGE);
            if (events[0]?.seq !== cursor.last + 1) await this.sendSnapshot(streamId, cursor, snap);
          }
        }
        let replayed = 0;
        for (const event of events) {
          if (event.seq <= cursor.last) continue;
          if (event.seq !== cursor.last + 1) break;
          this.sendEvent(cursor, event.frame, event.seq);
          replayed++;
        }
        this.counters.replayed(replayed);
        // A full page that we could send entirely: there may be more history right after it.
        if (events.length === PAGE && events[PAGE - 1]?.seq === cursor.last) continue;
        if (this.releaseHeld(cursor)) return;
        stalls = cursor.last === before ? stalls + 1 : 0;
        if (stalls >= 3) throw new Error("history does not close the gap");
      }
    } catch (error) {
      cursor.held = undefined;
      // Redis error text names hosts, ports and internals: it goes to the log, never to the user.
      this.counters.historyFailed(streamId, error);
      if (!this.closed && this.transport.open) {
        this.sendControl({
          type: "error",
          code: ErrorCode.unavailable,
          message: "could not read the stream's history now; resume again",
          streamId,
        });
      }
    } finally {
      cursor.filling = false;
    }
  }

  /** Sends held events in seq order; false (and keeps holding) when a gap remains. */
  private releaseHeld(cursor: Cursor): boolean {
    const held = (cursor.held ?? []).sort((a, b) => a.seq - b.seq);
    let index = 0;
    for (; index < held.length; index++) {
      const message = held[index]!;
      if (message.seq <= cursor.last) continue;
      if (message.seq !== cursor.last + 1) break;
      this.sendEvent(cursor, message.frame, message.seq);
      this.counters.delivered(1);
    }
    if (index < held.length) {
      cursor.held = held.slice(index);
      return false;
    }
    cursor.held = undefined;
    return true;
  }

  /**
   * Sends the text as a snapshot. For an ended stream the snapshot stops one seq short of `done` (the text is the
   * same) and the stored `done` frame follows, so the client always sees its stream end.
   */
  private async sendSnapshot(streamId: string, cursor: Cursor, known?: StreamSnapshot): Promise<void> {
    const snap = known ?? (await this.history.snapshot(streamId));
    if (!snap) throw new Error("stream state expired");
    if (snap.seq <= cursor.last) return;
    const textSeq = snap.doneFrame ? snap.seq - 1 : snap.seq;
    if (textSeq > cursor.last && textSeq >= 0) {
      this.counters.snapshot();
      this.sendEvent(
        cursor,
        JSON.stringify({ type: "snapshot", streamId, seq: textSeq, content: snap.content }),
        textSeq,
      );
    }
    if (snap.doneFrame) this.sendEvent(cursor, snap.doneFrame, snap.seq);
  }

  private sendEvent(cursor: Cursor, frame: string, seq: number): void {
    cursor.last = seq;
    // `done` is the last event of a stream; the frame starts with its type, so no parse is needed to see it.
    if (frame.startsWith('{"type":"done"')) {
      cursor.done = true;
      this.forgetEnded();
    }
    this.send(frame);
  }

  sendControl(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  private send(frame: string): void {
    if (this.closed || !this.transport.open) return;
    if (this.transport.bufferedAmount > this.maxBufferedBytes) {
      this.closed = true;
      this.counters.slowConsumer();
      this.transport.close(CloseCode.slowConsumer, "slow consumer: resume to continue");
      return;
    }
    this.transport.send(frame);
  }

  private forgetEnded(): void {
    if (++this.ended <= MAX_ENDED_CURSORS || !this.cursors) return;
    for (const [streamId, cursor] of this.cursors) {
      if (!cursor.done) continue;
      this.cursors.delete(streamId);
      this.ended--;
      if (this.ended <= MAX_ENDED_CURSORS / 2) break;
    }
  }
}
