// Watches the load generator itself, so a figure it could not drive is flagged, not reported
// as the server's: its event-loop delay and the CPU it used.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { round } from "./report.mjs";

/** Event-loop delay p99 (ms) above which the load process was too busy to time deliveries. */
export const MAX_LOOP_DELAY_MS = 20;
/** Share of one core above which the load process was saturated. */
export const MAX_CPU = 0.9;

/**
 * Start watching; the returned function stops and reports what it saw.
 * @returns {() => {cpu: number, loop_delay_p99_ms: number, loop_delay_max_ms: number, saturated: boolean}}
 */
export function watchLoad() {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  return () => {
    histogram.disable();
    const used = process.cpuUsage(cpuStart);
    const wallMs = performance.now() - wallStart;
    const cpu = (used.user + used.system) / 1000 / wallMs;
    const p99 = histogram.percentile(99) / 1e6;
    const max = histogram.max / 1e6;
    // The histogram's floor is its resolution, so subtract it from the delay it reports.
    const delay = Math.max(0, p99 - 10);
    return {
      cpu: round(cpu, 3),
      loop_delay_p99_ms: round(delay, 2),
      loop_delay_max_ms: round(Math.max(0, max - 10), 2),
      saturated: cpu > MAX_CPU || delay > MAX_LOOP_DELAY_MS,
    };
  };
}
