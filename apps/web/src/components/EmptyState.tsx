import { memo } from "react";

const EXAMPLES = [
  { label: "A short answer", text: "Hello chatgrid! What happens when a node dies?" },
  {
    label: "A long answer (to watch failover)",
    text: "[demo:tokens=300] Tell me a long story about resilient systems",
  },
  { label: "A provider error (to see retry)", text: "[demo:error] This answer will fail on purpose" },
];

/** What a new chat shows: how to use it, and prompts that show off the multi-node machinery. */
export const EmptyState = memo(function EmptyState({ onPick }: { onPick: (text: string) => void }) {
  return (
    <div className="empty-state" data-testid="empty-state">
      <h2>Ask anything</h2>
      <p>
        Answers stream in as they are written. Press <kbd>Enter</kbd> to send, <kbd>Shift</kbd>+<kbd>Enter</kbd> for a
        new line, <kbd>Esc</kbd> to stop.
      </p>
      <p>
        Every answer shows the gateway and AI node that served it. Open <strong>Nodes</strong> to watch the socket; kill
        its gateway and the answer carries on from another one, with nothing lost or repeated.
      </p>
      <ul className="examples">
        {EXAMPLES.map((e) => (
          <li key={e.label}>
            <button type="button" className="example" onClick={() => onPick(e.text)}>
              <span className="example-label">{e.label}</span>
              <span className="example-text">{e.text}</span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
});
