export * from "./config";
export * from "./topology";
