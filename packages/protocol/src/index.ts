export * from "./codes";
export * from "./internal";
export * from "./limits";
export * from "./rest";
export * from "./ws";
