/** The scenarios, in the order they run; these are the keys of results.json's `scenarios`. */
export const SCENARIO_NAMES = ['wrapper_overhead', 'handoff_latency', 'serialized_throughput', 'output_streaming', 'scale', 'idle_cost', 'cluster', 'fast_client', 'pool_drain'] as const;

export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** The scenarios a job launcher shapes: they run once per launcher, side by side (native when it loads, portable). */
export const LAUNCHER_SHAPED: ReadonlySet<ScenarioName> = new Set<ScenarioName>(['wrapper_overhead', 'handoff_latency', 'serialized_throughput']);

/** The results.json key of one pass: the portable pass of a launcher-shaped scenario is `<name>@portable` when native ran too. */
export function entryName(scenario: ScenarioName, launcher: 'native' | 'portable' | null, launchers: readonly string[]): string {
  return launcher === 'portable' && launchers.length > 1 ? `${scenario}@portable` : scenario;
}

/** Every key results.json holds after a full pass with these launchers. */
export function entryNames(launchers: readonly ('native' | 'portable')[]): string[] {
  return SCENARIO_NAMES.flatMap((n) => (LAUNCHER_SHAPED.has(n) ? launchers.map((l) => entryName(n, l, launchers)) : [n]));
}
