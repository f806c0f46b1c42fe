export * from "./codes";
export * from "./events";
export * from "./internal";
export * from "./limits";
export * from "./rest";
export * from "./ws";
