import { monotonicFactory } from "ulid";

/** Monotonic within a process, so ids made in the same millisecond still sort in creation order. */
const ulid = monotonicFactory();

/**
 * Type-prefixed, time-sortable ids. A grant shares its request's ULID so either id finds the one item
 * that holds both (README.md § Architecture, table design).
 */
export const ID_PREFIX = { request: "req", grant: "gr", push: "push" } as const;

export function createId(kind: keyof typeof ID_PREFIX, now = Date.now()): string {
  return `${ID_PREFIX[kind]}_${ulid(now).toLowerCase()}`;
}

export const ID_PATTERN = {
  request: /^req_[0-9a-hjkmnp-tv-z]{26}$/,
  grant: /^gr_[0-9a-hjkmnp-tv-z]{26}$/,
  push: /^push_[0-9a-hjkmnp-tv-z]{26}$/,
} as const;

export function grantIdOf(requestId: string): string {
  return `gr_${requestId.slice(4)}`;
}

export function requestIdOf(grantId: string): string {
  return `req_${grantId.slice(3)}`;
}
