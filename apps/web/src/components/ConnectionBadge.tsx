import { memo, useEffect, useState } from "react";
import type { ConnectionInfo } from "../socket";

const LABELS: Record<ConnectionInfo["state"], string> = {
  connecting: "Connecting",
  connected: "Connected",
  reconnecting: "Reconnecting",
  resumed: "Resumed",
  offline: "Offline",
};

/** Seconds until the next attempt, ticking while a retry is scheduled. */
function useCountdown(retryAt: number | undefined): number | undefined {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!retryAt) return;
    const timer = setInterval(() => setTick((t) => t + 1), 250);
    return () => clearInterval(timer);
  }, [retryAt]);
  const left = retryAt ? retryAt - Date.now() : 0;
  return left > 0 ? Math.ceil(left / 1000) : undefined;
}

/** The connection state, always visible: a dot, a word, the gateway; a "Retry now" button while waiting. */
export const ConnectionBadge = memo(function ConnectionBadge({
  connection,
  onReconnect,
}: {
  connection: ConnectionInfo;
  onReconnect: () => void;
}) {
  const { state, node, retryAt, attempt } = connection;
  const seconds = useCountdown(
    state === "reconnecting" || state === "offline" || state === "connecting" ? retryAt : undefined,
  );
  const waiting = seconds !== undefined && (state === "offline" || attempt >= 2);
  return (
    <div className="connection" data-testid="connection-badge" data-state={state} data-node={node ?? ""}>
      <span className="connection-badge" role="status" aria-live="polite">
        <span className="dot" aria-hidden="true" />
        <span className="connection-label">{LABELS[state]}</span>
        {node && (state === "connected" || state === "resumed") && (
          <span className="connection-node">
            <span className="sr-only">to </span>
            {node}
          </span>
        )}
        {waiting && <span className="connection-retry">retry in {seconds}s</span>}
      </span>
      {waiting && (
        <button type="button" className="link-button" onClick={onReconnect}>
          Retry now
        </button>
      )}
    </div>
  );
});
