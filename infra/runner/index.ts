export * from "./binaries";
export * from "./cluster-runner";
export * from "./health";
export * from "./kafka";
export * from "./ports";
export * from "./supervised-process";
