import type { EmulatorCore, EmulatorService } from "./contract.ts";
import { eicService } from "./eic.ts";
import { eiceService } from "./eice.ts";
import { metadataService } from "./metadata.ts";

export interface ServiceOptions {
  /** How long pushed keys stay in instance metadata (AWS: 60 s). */
  keyTtlSeconds?: number;
  /** Concurrent tunnels per EICE endpoint (AWS: 20). */
  maxConnectionsPerEndpoint?: number;
  /** How often tunnels are checked against emulator time (moved clocks cut tunnels this fast). */
  sweepIntervalMs?: number;
}

/** EC2 Instance Connect, instance metadata and EICE on top of the built-in STS/IAM/EC2/CloudTrail. */
export function allServices(options: ServiceOptions = {}) {
  return (core: EmulatorCore): EmulatorService[] => {
    const eic = eicService(core, { keyTtlSeconds: options.keyTtlSeconds });
    return [
      eic,
      eiceService(core, {
        maxConnectionsPerEndpoint: options.maxConnectionsPerEndpoint,
        sweepIntervalMs: options.sweepIntervalMs,
      }),
      metadataService(core, eic),
    ];
  };
}
