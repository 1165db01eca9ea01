#!/usr/bin/env node
// ssh's ProxyCommand for `access ssh` over EICE: stdin/stdout ↔ the Unix socket where the `access ssh` that
// started ssh holds the tunnel. Plain JavaScript with no imports beyond Node, so it starts in a few tens of
// milliseconds instead of loading the CLI through tsx a second time.
import { connect } from "node:net";

const path = process.argv[2];
if (!path) {
  process.stderr.write("usage: relay.js <socket path> (ssh runs this for access ssh)\n");
  process.exit(2);
}
const socket = connect(path);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on("error", (error) => {
  process.stderr.write(`access: the tunnel relay lost its socket: ${error.message}\n`);
  process.exit(255);
});
// The tunnel's end is the session's end, though ssh keeps our stdin open: exit once stdout has taken
// everything (writes to a pipe are asynchronous, and exiting earlier would cut the last bytes).
socket.on("close", () => process.stdout.write("", () => process.exit(0)));
