// Pieces every CLI command shares.

export class UsageError extends Error {}

/** Prints each compile step with its elapsed time on stderr. */
export function reportCompileProgress(name: string): (step: string) => void {
  const started = performance.now();
  return (step) => {
    const s = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(`thaw: ${name}: ${step} (${s}s)\n`);
  };
}
