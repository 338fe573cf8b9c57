/** The scenarios, in the order they run; these are the keys of results.json's `scenarios`. */
export const SCENARIO_NAMES = ['wrapper_overhead', 'handoff_latency', 'serialized_throughput', 'output_streaming', 'scale', 'idle_cost', 'cluster'] as const;

export type ScenarioName = (typeof SCENARIO_NAMES)[number];
