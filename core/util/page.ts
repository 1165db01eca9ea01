/** A page of results and the opaque cursor for the next one (design §9: `{items, nextCursor?}`). */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/**
 * Index entries a filtered list (the audit log, the trail) reads per call at most, before its filter: past it,
 * the page ends with what matched so far and a cursor where reading stopped, so no call reads without bound.
 */
export const LIST_READ_BUDGET = 2_000;
