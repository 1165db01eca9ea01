/** A page of results and the opaque cursor for the next one (design §9: `{items, nextCursor?}`). */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}
