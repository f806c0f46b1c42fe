import type { EventInput } from "@chatgrid/protocol";

/** Where nodes send their events. Emitting never blocks and never throws: chat must not wait for Kafka. */
export interface EventProducer {
  emit(event: EventInput): void;
  /** Events waiting for Kafka. */
  readonly buffered: number;
  /** Events dropped because the buffer was full. */
  readonly dropped: number;
  /** Delivers what is buffered (for at most `timeoutMs`), then disconnects. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Events off (no Kafka configured, or a broker list that cannot be used). */
export class DisabledEventProducer implements EventProducer {
  readonly buffered = 0;
  readonly dropped = 0;
  emit(): void {}
  async stop(): Promise<void> {}
}
