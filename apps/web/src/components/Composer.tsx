import { LIMITS } from "@chatgrid/protocol";
import { type FormEvent, type KeyboardEvent, memo, useEffect, useLayoutEffect, useRef, useState } from "react";

export interface Suggestion {
  id: number;
  text: string;
}

const MAX_HEIGHT_PX = 220;

/**
 * The message box. Enter sends, Shift+Enter is a new line (and Enter while an IME composes is the IME's). While an
 * answer streams the button is Stop (Esc works too, anywhere on the page).
 */
export const Composer = memo(function Composer({
  streaming,
  busy,
  stopping,
  onSend,
  onStop,
  suggestion,
}: {
  /** An answer of this conversation is streaming: the button is Stop. */
  streaming: boolean;
  /** A message is being sent: nothing else can be sent yet. */
  busy: boolean;
  stopping: boolean;
  onSend: (text: string) => void;
  onStop: () => void;
  suggestion?: Suggestion;
}) {
  const [text, setText] = useState("");
  const ref = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (!suggestion) return;
    setText(suggestion.text);
    ref.current?.focus();
  }, [suggestion]);

  // Grow with the text up to a bound, then scroll inside.
  // biome-ignore lint/correctness/useExhaustiveDependencies: the height follows the text
  useLayoutEffect(() => {
    const area = ref.current;
    if (!area) return;
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [text]);

  const canSend = !streaming && !busy && text.trim().length > 0 && text.length <= LIMITS.messageMaxChars;

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (streaming) {
      onStop();
      return;
    }
    if (!canSend) return;
    onSend(text);
    setText("");
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      if (!streaming && !busy) submit();
    }
  };

  const over = text.length > LIMITS.messageMaxChars;
  return (
    <form className="composer" onSubmit={submit} data-testid="composer">
      <label htmlFor="composer-input" className="sr-only">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        value={text}
        placeholder={streaming ? "Answer streaming… (Esc to stop)" : "Message chatgrid (Enter to send)"}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby="composer-hint"
        aria-invalid={over || undefined}
      />
      <span id="composer-hint" className="sr-only">
        Enter sends, Shift+Enter adds a new line, Escape stops a streaming answer.
      </span>
      {streaming ? (
        <button type="submit" className="send-button stop" data-testid="stop-button" disabled={stopping}>
          {stopping ? "Stopping…" : "Stop"}
        </button>
      ) : (
        <button type="submit" className="send-button" data-testid="send-button" disabled={!canSend}>
          Send
        </button>
      )}
      {over && (
        <p className="composer-error" role="alert">
          Messages are at most {LIMITS.messageMaxChars.toLocaleString()} characters.
        </p>
      )}
    </form>
  );
});
