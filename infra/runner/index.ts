export * from "./binaries";
export * from "./cluster-runner";
export * from "./health";
export * from "./ports";
export * from "./supervised-process";
