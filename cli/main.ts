/**
 * The `access` command. This module only wires commander; command bodies are imported when they run,
 * so `access --help` or a typo never pays for zod, yaml or the policy engine.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { Request } from "../core/request/index.ts";
import { ApiError, createClient, UnreachableError } from "./client.ts";
import type { AuditOptions, GrantOptions, ListOptions, LoginOptions, RequestOptions } from "./commands.ts";
import type { SshOptions } from "./connect.ts";
import { CliError, type Ctx, EXIT, type Io, processIo } from "./context.ts";
import type { ExplainOptions } from "./policy.ts";
import { type Credentials, decodeToken, notLoggedIn, resolveCredentials } from "./session.ts";
import type { ImportOptions, ReportOptions } from "./trail.ts";

const VERSION = "0.1.0";

const STATUS_NAMES = {
  pending: true,
  approved: true,
  active: true,
  expired: true,
  revoked: true,
  denied: true,
  cancelled: true,
  "timed-out": true,
} satisfies Record<Request.Status, true>;
const STATUSES = Object.keys(STATUS_NAMES);

const commands = () => import("./commands.ts");
const policy = () => import("./policy.ts");
const connect = () => import("./connect.ts");
const trail = () => import("./trail.ts");

const collect = (value: string, previous: string[]) => [...previous, value];

function integer(min: number, max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || number < min || number > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return number;
  };
}

function hintFor(error: ApiError, credentials: Credentials | undefined, now: Date): string | undefined {
  if (error.status !== 401) return undefined;
  if (credentials?.source.token === "env")
    return "ACCESS_TOKEN was refused: refresh it, or unset it and run: access login";
  const exp = credentials?.token ? decodeToken(credentials.token)?.exp : undefined;
  if (exp !== undefined && exp * 1000 <= now.getTime()) return "your session has expired; run: access login";
  return "run: access login";
}

async function report(
  error: unknown,
  io: Io,
  json: boolean,
  credentials: Credentials | undefined,
): Promise<number> {
  const { errorText } = await import("./format.ts");
  if (error instanceof ApiError) {
    if (json && error.body !== undefined) io.stdout(`${JSON.stringify(error.body, null, 2)}\n`);
    io.stderr(
      errorText({
        message: error.message,
        code: error.code ?? `http.${error.status}`,
        details: error.details,
        hint: hintFor(error, credentials, io.now()),
      }),
    );
  } else if (error instanceof UnreachableError) {
    io.stderr(errorText({ message: error.message }));
  } else if (error instanceof CliError) {
    io.stderr(errorText(error));
  } else {
    io.stderr(errorText({ message: error instanceof Error ? error.message : String(error) }));
    if (io.env.ACCESS_DEBUG && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
  }
  return EXIT.error;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[], overrides: Partial<Io> = {}): Promise<number> {
  const io: Io = { ...processIo(), ...overrides };
  let exitCode: number = EXIT.ok;
  let json = false;
  let credentials: Credentials | undefined;

  const context = (command: Command): Ctx => {
    json = command.opts().json === true;
    return {
      io,
      json,
      now: io.now(),
      api() {
        credentials = resolveCredentials(io.env);
        const { apiUrl, token, session } = credentials;
        if (!token) throw notLoggedIn(apiUrl, session?.apiUrl);
        return createClient({ apiUrl, token, fetch: io.fetch });
      },
      emit(body, human) {
        io.stdout(`${json ? JSON.stringify(body, null, 2) : human()}\n`);
      },
    };
  };
  // Commander calls actions with (...arguments, options, command); the command is always last.
  const run =
    <A extends unknown[]>(action: (ctx: Ctx, ...args: A) => number | Promise<number>) =>
    async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      exitCode = await action(context(command), ...(args.slice(0, -1) as A));
    };
  const leaf = (parent: Command, nameAndArgs: string, description: string) =>
    parent
      .command(nameAndArgs)
      .description(description)
      .option("--json", "print the raw JSON instead of the human view");

  const program = new Command("access")
    .description("Just-in-time, approved access to EC2 instances")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError("(add --help for usage)")
    .addHelpText(
      "after",
      "\nEnvironment: ACCESS_API_URL and ACCESS_TOKEN override the session stored by `access login`;" +
        "\nACCESS_CONFIG names the policy file for `access policy`." +
        "\nACCESS_EICE_ENDPOINT (local runtime) is where tunnels really connect; the session stores it at login." +
        "\nExit codes: 0 done, 1 error, 2 a negative answer (policy denies, audit chain broken);" +
        "\n`access ssh` exits with ssh's own code.",
    );

  // ---- session ----
  leaf(program, "login", "log in: a dev token from the local runtime, or a token from your identity provider")
    .option("--user <email>", "who to log in as (local dev issuer, POST /dev/login)")
    .option(
      "--api <url>",
      "API base URL (default: ACCESS_API_URL, the stored session, or http://127.0.0.1:8787)",
    )
    .option(
      "--token <jwt>",
      "store this OIDC token instead (- reads it from stdin, keeping it out of shell history)",
    )
    .action(run(async (ctx, options: LoginOptions) => (await commands()).login(ctx, options)));
  leaf(program, "logout", "forget the stored session").action(
    run(async (ctx) => (await commands()).logout(ctx)),
  );
  leaf(program, "whoami", "show who the stored token says you are (decoded locally, not verified)").action(
    run(async (ctx) => (await commands()).whoami(ctx)),
  );

  // ---- requests ----
  leaf(program, "request <instance>", "ask for access to an instance")
    .addOption(new Option("--ssh", "SSH login as an OS user").conflicts(["tunnel", "rdp"]))
    .addOption(new Option("--tunnel", "TCP tunnel through EC2 Instance Connect Endpoint").conflicts(["rdp"]))
    .addOption(new Option("--rdp", "RDP tunnel (port 3389)"))
    .option("--user <os-user>", "OS user for --ssh, e.g. ec2-user")
    .option("--port <n>", "port for --tunnel", integer(1, 65_535))
    .requiredOption("--for <duration>", "how long: 90s, 30m, 1h, 1h30m")
    .requiredOption("--reason <text>", "why you need access")
    .option("--ticket <id>", "ticket or incident, e.g. INC-42")
    .option("--break-glass", "emergency: active at once, security alerted, reviewed afterwards")
    .option("--start <time>", "start later, at this ISO time (the grant's clock starts then)")
    .action(
      run(async (ctx, instance: string, options: RequestOptions) =>
        (await commands()).request(ctx, instance, options),
      ),
    );
  leaf(program, "ls", "list requests you can see")
    .addOption(new Option("--status <status>", "only requests in this status").choices(STATUSES))
    .option("--mine", "only my requests")
    .option("--pending", "only requests waiting for my approval")
    .option("--limit <n>", "page size (1-100)", integer(1, 100))
    .option("--cursor <cursor>", "continue a previous listing")
    .action(run(async (ctx, options: ListOptions) => (await commands()).list(ctx, options)));
  leaf(program, "show <id>", "show a request (req_…) or a grant (gr_…)").action(
    run(async (ctx, id: string) => (await commands()).show(ctx, id)),
  );
  for (const verb of ["approve", "deny"] as const) {
    leaf(program, `${verb} <id>`, `${verb} a request`)
      .option("--comment <text>", "recorded with the decision")
      .action(
        run(async (ctx, id: string, options: { comment?: string }) =>
          (await commands()).decide(ctx, verb, id, options),
        ),
      );
  }
  leaf(program, "cancel <id>", "withdraw your own pending request").action(
    run(async (ctx, id: string) => (await commands()).decide(ctx, "cancel", id, {})),
  );

  // ---- grants ----
  leaf(program, "grants", "list grants you can see")
    .option("--active", "only active grants")
    .option("--mine", "only my grants")
    .option("--limit <n>", "page size (1-100)", integer(1, 100))
    .option("--cursor <cursor>", "continue a previous listing")
    .action(run(async (ctx, options: GrantOptions) => (await commands()).grants(ctx, options)));
  leaf(program, "revoke <grant-id>", "end a grant now")
    .option("--reason <text>", "why")
    .action(
      run(async (ctx, id: string, options: { reason?: string }) =>
        (await commands()).revoke(ctx, id, options),
      ),
    );
  leaf(program, "extend <grant-id>", "ask for more time on an active grant")
    .requiredOption("--for <duration>", "how much longer: 30m, 1h")
    .requiredOption("--reason <text>", "why")
    .action(
      run(async (ctx, id: string, options: { for: string; reason: string }) =>
        (await commands()).extend(ctx, id, options),
      ),
    );

  // ---- connecting ----
  program
    .command("ssh")
    .description(
      "log in with a key pair made here (only its public half is pushed, for 60 s), through the system ssh",
    )
    .argument("<target>", "an instance (i-…) you have an active ssh grant for, or a grant id (gr_…)")
    .argument("[command...]", "remote command, after -- (access ssh i-… -- uptime)")
    .option("--user <os-user>", "OS user (default: the grant's, else ec2-user)")
    .option(
      "--for <duration>",
      "no active grant? ask for one this long (needs --reason) and wait for approval",
    )
    .option("--reason <text>", "why, when asking for a grant")
    .option("--ticket <id>", "ticket or incident, when asking for a grant")
    .option("-i, --identity-file <file>", "push the public half of this existing key instead of a fresh one")
    .option(
      "-o, --ssh-option <Key=Value>",
      "extra ssh option, repeatable (wins over the defaults)",
      collect,
      [],
    )
    .action(
      run(async (ctx, target: string, command: string[], options: SshOptions) =>
        (await connect()).ssh(ctx, target, command, options),
      ),
    );
  program
    .command("proxy")
    .description("stdin/stdout through one EICE tunnel: ssh -o ProxyCommand='access proxy <grant-id>'")
    .argument("<grant-id>", "the grant (gr_…)")
    .action(run(async (ctx, grantId: string) => (await connect()).proxy(ctx, grantId)));
  leaf(
    program,
    "tunnel <grant-id>",
    "a local port whose every connection is its own EICE tunnel, until Ctrl-C",
  )
    .requiredOption(
      "--local-port <n>",
      "port to listen on at 127.0.0.1 (0: any free port)",
      integer(0, 65_535),
    )
    // EICE allows 20 concurrent connections per endpoint, shared by everyone using it.
    .option("--max-connections <n>", "refuse connections beyond this many (1-20)", integer(1, 20), 10)
    .action(
      run(async (ctx, grantId: string, options: { localPort: number; maxConnections: number }) =>
        (await connect()).tunnel(ctx, grantId, options),
      ),
    );

  // ---- audit ----
  const audit = program.command("audit").description("read and verify the audit trail");
  leaf(audit, "events", "list audit records (auditors: all; others: pass --request)")
    .option("--request <id>", "only the history of this request")
    .option("--user <email>", "only records by or about this person (actor, requester, their AWS principals)")
    .option("--instance <id>", "only records about this instance, i-…")
    .option("--from <time>", "ISO time, or a duration meaning that long ago (24h)")
    .option("--to <time>", "ISO time, or a duration meaning that long ago")
    .addOption(new Option("--order <order>", "sort by sequence").choices(["asc", "desc"]))
    .option("--limit <n>", "page size (1-200)", integer(1, 200))
    .option("--cursor <cursor>", "continue a previous listing")
    .action(run(async (ctx, options: AuditOptions) => (await commands()).auditEvents(ctx, options)));
  leaf(audit, "verify", "walk the hash chain and report the first broken link (exit 2 if broken)").action(
    run(async (ctx) => (await commands()).auditVerify(ctx)),
  );
  leaf(
    audit,
    "import <paths...>",
    "import CloudTrail log files (*.json[.gz], dirs searched) into the audit trail",
  )
    .option("--progress", "draw a progress bar on stderr (default: when stderr is a terminal)")
    .option("--no-progress", "no progress bar")
    .action(
      run(async (ctx, paths: string[], options: ImportOptions) =>
        (await trail()).auditImport(ctx, paths, options),
      ),
    );

  // ---- reports ----
  leaf(program, "report", "access report for a period: grants, use, unbrokered events, controls (auditors)")
    .requiredOption("--from <time>", "ISO time, or a duration meaning that long ago (30d)")
    .option("--to <time>", "ISO time, or a duration meaning that long ago (default: now)")
    .addOption(
      new Option("--format <format>", "output format").choices(["json", "csv", "html"]).default("json"),
    )
    .addOption(
      new Option("--section <section>", "which table for --format csv").choices([
        "grants",
        "events",
        "controls",
      ]),
    )
    .option("-o, --output <file>", "write to this file instead of stdout")
    .action(run(async (ctx, options: ReportOptions) => (await trail()).report(ctx, options)));

  // ---- policy (offline) ----
  const policyCommand = program
    .command("policy")
    .description("validate and dry-run the policy file, offline");
  leaf(
    policyCommand,
    "check [file]",
    "validate a policy file (default: $ACCESS_CONFIG or access.yaml)",
  ).action(run(async (ctx, file: string | undefined) => (await policy()).check(ctx, file)));
  leaf(policyCommand, "explain", "would this request be allowed, under which rule? (exit 0 allowed, 2 not)")
    .requiredOption("--user <email>", "the requester")
    .requiredOption("--instance <id>", "the instance, i-…")
    .addOption(
      new Option("--method <method>", "what is asked for")
        .choices(["ssh", "tunnel", "rdp"])
        .makeOptionMandatory(),
    )
    .option("--os-user <user>", "OS user for ssh")
    .option("--port <n>", "port for tunnel", integer(1, 65_535))
    .option("--for <duration>", "requested duration, checked against the rule's maximum")
    .option("--reason <text>", "checked against the rule's reason pattern")
    .option("--ticket <id>", "checked against the rule's ticket pattern")
    .option("--break-glass", "ask as break-glass")
    .option("--groups <a,b>", "extra groups, as if the token carried them")
    .option("--config <file>", "policy file (default: $ACCESS_CONFIG or access.yaml)")
    .action(run(async (ctx, options: ExplainOptions) => (await policy()).explain(ctx, options)));

  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode;
  } catch (error) {
    // Commander has already printed its own usage errors and help; only the exit code is left.
    if (error instanceof CommanderError) return error.exitCode;
    return report(error, io, json, credentials);
  }
}
