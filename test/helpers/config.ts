import { readFileSync } from "node:fs";

/** The demo policy `npm start` runs with; tests build variants of it by text replacement. */
export const DEMO_CONFIG_TEXT = readFileSync(
  new URL("../../local/demo/access.yaml", import.meta.url),
  "utf8",
);
