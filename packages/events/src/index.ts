export * from "./config";
export * from "./create";
export * from "./kafka-producer";
export * from "./producer";
export * from "./security";
