/** Recorded run durations per lock, for `lockd status`'s estimated wait. A small ring per key, no timers. */
const KEEP = 20;

export class DurationStats {
  private byKey = new Map<string, number[]>();

  record(key: string, ms: number): void {
    let ring = this.byKey.get(key);
    if (!ring) this.byKey.set(key, (ring = []));
    ring.push(ms);
    if (ring.length > KEEP) ring.shift();
  }

  /** Median of the recent durations, or null before the first recorded run. */
  typical(key: string): number | null {
    const ring = this.byKey.get(key);
    if (!ring || ring.length === 0) return null;
    const sorted = [...ring].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  toJSON(): Record<string, number[]> {
    return Object.fromEntries(this.byKey);
  }

  load(data: Record<string, number[]>): void {
    for (const [k, v] of Object.entries(data)) if (Array.isArray(v)) this.byKey.set(k, v.filter((x) => typeof x === 'number').slice(-KEEP));
  }
}
