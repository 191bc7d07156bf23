import "./styles.css";
import { ChatApp } from "./app";

new ChatApp().start().catch((error: unknown) => {
  const loading = document.getElementById("loading");
  if (loading) loading.textContent = `LISA failed to start: ${error instanceof Error ? error.message : String(error)}`;
});
