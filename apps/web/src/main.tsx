// First: before any schema is built (see zod-config.ts).
import "./zod-config";
import "./styles.css";
import { createRoot } from "react-dom/client";
import { ChatStore } from "./chat-store";
import { App } from "./components/App";

const store = new ChatStore();
createRoot(document.getElementById("root")!).render(<App store={store} />);
void store.start();
