import { memo } from "react";
import type { ConnectionInfo, LogEntry } from "../socket";
import type { StreamsState } from "../stream-reducer";
import { isOpen } from "../stream-reducer";

function time(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * The machinery, for people who want to see it: the gateway this page's socket is on, the session, open streams
 * with their last seq and route, and the socket's events (closes, backoff, welcome, resume) as they happen.
 */
export const NodePanel = memo(function NodePanel({
  connection,
  log,
  streams,
  onClose,
}: {
  connection: ConnectionInfo;
  log: LogEntry[];
  streams: StreamsState;
  onClose: () => void;
}) {
  const open = Object.values(streams).filter(isOpen);
  return (
    <aside id="node-panel" className="node-panel" aria-label="Nodes and connection events" data-testid="node-panel">
      <div className="panel-head">
        <h2>Nodes</h2>
        <button type="button" className="link-button" onClick={onClose}>
          Close
        </button>
      </div>
      <dl className="panel-facts">
        <dt>Socket on</dt>
        <dd data-testid="socket-node">{connection.node ?? "—"}</dd>
        <dt>State</dt>
        <dd>{connection.state}</dd>
        <dt>Session</dt>
        <dd className="mono">{connection.sessionId ? `${connection.sessionId.slice(0, 14)}…` : "—"}</dd>
        {connection.lastClose && (
          <>
            <dt>Last close</dt>
            <dd>{connection.lastClose.code}</dd>
          </>
        )}
      </dl>
      <h3>Open streams</h3>
      {open.length === 0 ? (
        <p className="panel-muted">None.</p>
      ) : (
        <ul className="panel-streams">
          {open.map((s) => (
            <li key={s.streamId} className="mono">
              {s.streamId.slice(0, 12)}… seq {s.lastSeq} · {s.aiNode ?? "?"} · {s.via.join(" → ") || "—"}
            </li>
          ))}
        </ul>
      )}
      <h3>Events</h3>
      <ol className="panel-log" aria-live="polite" aria-relevant="additions" data-testid="node-log">
        {[...log].reverse().map((entry) => (
          <li key={entry.id} className={`log-${entry.level}`}>
            <time className="mono">{time(entry.at)}</time> {entry.text}
          </li>
        ))}
      </ol>
    </aside>
  );
});
