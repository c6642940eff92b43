import { render } from "preact";
import { insideTauri, setApi } from "./api";
import { App } from "./App";
import "./styles.css";

async function start(): Promise<void> {
  if (!insideTauri()) {
    // A plain browser (vite dev without Tauri) gets an in-memory backend with demo data.
    const { createMockApi } = await import("./mock");
    setApi(createMockApi());
  }
  const root = document.getElementById("app");
  if (root) render(<App />, root);
}

void start();
