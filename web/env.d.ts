declare const __WEB_CONFIG__: import("./config.ts").WebConfig;
declare module "*.css";
