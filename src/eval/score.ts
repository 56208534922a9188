// Exact-answer scoring and the 95% interval of an accuracy.

/** Share of answers the text contains, each as a whole word (so 1234567 does not match inside 91234567). */
export function answerRecall(text: string, answers: readonly string[]): number {
  if (answers.length === 0) return 0;
  const lower = text.toLowerCase();
  const found = answers.filter((a) => {
    const escaped = a.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}($|[^\\p{L}\\p{N}])`, 'u').test(lower);
  });
  return found.length / answers.length;
}

/** Wilson score interval (Wilson 1927) for k successes in n trials at z = 1.96 (95%). */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
