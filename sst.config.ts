/// <reference path="./.sst/platform/config.d.ts" />

export default $config({
  app(input) {
    const isProduction = input?.stage === "production";
    return {
      name: "access-broker",
      home: "aws",
      // Production holds live grants and the audit trail: removing the stage must never delete them.
      removal: isProduction ? "retain" : "remove",
      protect: isProduction,
    };
  },
  async run() {
    // Imported inside run() because infra files use the globals ($app, sst) that exist only here.
    const storage = await import("./infra/storage");
    const api = await import("./infra/api");
    await import("./infra/schedules");
    await import("./infra/trail");
    const web = await import("./infra/web");

    return {
      apiUrl: api.api.url,
      webUrl: web.web.url,
      tableName: storage.table.name,
    };
  },
});
