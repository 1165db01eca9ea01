export * as Identity from "./index.ts";

import * as z from "zod";
import { AuthError } from "../error.ts";
import type { Config, Principal } from "../policy/schema.ts";

/** The authenticated caller, as every core verb receives it. */
export const Actor = z.object({
  email: z.string(),
  groups: z.array(z.string()),
});
export type Actor = z.infer<typeof Actor>;

/**
 * API Gateway's JWT authorizer passes claims as strings; array claims arrive as "[a b]" or as JSON.
 * The local dev server fills the same context, so both paths go through here.
 */
function claimList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value !== "string" || value.trim() === "") return [];
  const text = value.trim();
  if (text.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      return text
        .slice(1, -1)
        .split(/[\s,]+/)
        .filter(Boolean);
    }
  }
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Builds the actor from verified token claims; the directory adds groups, it never removes them. */
export function fromClaims(claims: Record<string, unknown> | undefined, config: Config): Actor {
  const email = typeof claims?.email === "string" ? claims.email.trim().toLowerCase() : "";
  if (!z.email().safeParse(email).success) throw new AuthError("The token carries no usable email claim");
  const entry = config.directory.users.find((user) => user.email === email);
  const groups = new Set([...claimList(claims?.groups), ...(entry?.groups ?? [])]);
  return { email, groups: [...groups].sort() };
}

export function fromDirectory(email: string, config: Config): Actor | undefined {
  const entry = config.directory.users.find((user) => user.email === email.toLowerCase());
  return entry ? { email: entry.email, groups: [...entry.groups].sort() } : undefined;
}

/**
 * The directory user bound to a Slack user id (design §7): matched by id only, never by display name or
 * email, so renaming a Slack account changes nothing. Undefined for anyone the directory does not list.
 */
export function fromSlackUser(slackUserId: string, config: Config): Actor | undefined {
  const entry = config.directory.users.find((user) => user.slackUserId === slackUserId);
  return entry ? { email: entry.email, groups: [...entry.groups].sort() } : undefined;
}

/** The Slack user id the directory binds to `email`, if any (for DMs and mentions). */
export function slackUserIdOf(email: string, config: Config): string | undefined {
  return config.directory.users.find((user) => user.email === email.toLowerCase())?.slackUserId;
}

export function matches(actor: Actor, principal: Principal): boolean {
  if (principal.startsWith("group:")) return actor.groups.includes(principal.slice("group:".length));
  return actor.email === principal.slice("user:".length).toLowerCase();
}

export function matchesAny(actor: Actor, principals: readonly Principal[]): boolean {
  return principals.some((principal) => matches(actor, principal));
}

export function isAuditor(actor: Actor, config: Config): boolean {
  return matchesAny(actor, config.settings.auditors);
}

export const Profile = Actor.extend({ auditor: z.boolean(), admin: z.boolean() });
export type Profile = z.infer<typeof Profile>;

/** Who the caller is to the broker: the groups it merged from token and directory, and its roles. */
export function profile(actor: Actor, config: Config): Profile {
  return { ...actor, auditor: isAuditor(actor, config), admin: matchesAny(actor, config.settings.admins) };
}
