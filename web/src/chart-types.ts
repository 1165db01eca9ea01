/** One coloured series of a bar chart (a method, a classification…). */
export interface Series {
  label: string;
  color: string;
}

/** One bar position (a day, a latency band) with a value per series. */
export interface Bucket {
  label: string;
  values: number[];
}
