import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binaryPath, ensureBinaries } from "../../infra/runner";

export interface TestCertificates {
  /** The private CA's certificate (PEM): what a client must trust. */
  caFile: string;
  /** The server's unencrypted PKCS#8 key, its certificate and the CA's, in one PEM file (Kafka's PEM keystore). */
  keystorePemFile: string;
}

/**
 * A throwaway private CA and a server certificate it signed for 127.0.0.1 (an IP subjectAltName: clients connect by
 * address, and kafkajs sends no SNI for an IP), made with openssl in `dir`. Valid for two days.
 */
export function makeTestCertificates(dir: string): TestCertificates {
  ensureBinaries(["openssl"]);
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    const result = spawnSync(binaryPath("openssl"), args, { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr || result.stdout}`);
  };
  const rsa = ["-newkey", "rsa:2048", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...rsa,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=chatgrid test CA",
  );
  openssl("req", ...rsa, "-keyout", file("broker.key"), "-out", file("broker.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(
    file("broker.ext"),
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1",
      "",
    ].join("\n"),
  );
  openssl(
    "x509",
    "-req",
    "-in",
    file("broker.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("broker.pem"),
    "-days",
    "2",
    "-extfile",
    file("broker.ext"),
  );
  const keystorePemFile = file("broker-keystore.pem");
  writeFileSync(
    keystorePemFile,
    ["broker.key", "broker.pem", "ca.pem"].map((name) => readFileSync(file(name), "utf8")).join(""),
  );
  return { caFile: file("ca.pem"), keystorePemFile };
}
