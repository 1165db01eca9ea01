import { fileURLToPath } from "node:url";

// The CLI's own files, whether this module runs from cli/ (sources through tsx) or from the compiled
// copy in dist/cli/ (scripts/build-cli.mjs), which holds only JavaScript chunks.
const here = new URL(".", import.meta.url);
const cliDir = here.pathname.endsWith("/dist/cli/") ? new URL("../../cli/", here) : here;

/** The `access` launcher, for ProxyCommands that run the CLI again. */
export const BIN = fileURLToPath(new URL("bin.js", cliDir));
/** `access ssh`'s ProxyCommand over EICE: ssh's stdio ↔ the tunnel this process holds. */
export const RELAY = fileURLToPath(new URL("relay.js", cliDir));
