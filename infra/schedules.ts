import { sweeperFunction } from "./functions";

// CronV2 (EventBridge Scheduler) rather than Cron, which SST 4 deprecates. The sweeper is the backstop
// for the per-grant one-time schedules, so it must keep running even when those fail.
export const sweeper = new sst.aws.CronV2("SweeperCron", {
  function: sweeperFunction,
  schedule: "rate(1 minute)",
  // A failed sweep is retried by the next tick a minute later; retries would only overlap with it.
  retries: 0,
});
