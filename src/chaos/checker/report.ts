// Violation reports a person can read: for a partition that cannot be linearized, the longest
// linearizable prefix (with the state after each op), the ops that could come next and why none
// can, a shrunken set of ops that still cannot be ordered, a text timeline and an HTML timeline.
import { performance } from 'node:perf_hooks';
import { checkPartition, IMPOSSIBLE } from './linearizability.ts';
import type { CheckResult, Model, Operation, PartitionResult } from './linearizability.ts';

/** A fault window drawn on the timelines (the nemesis's log), times in ns like the ops. */
export interface TimelineBand {
  start: number;
  end: number;
  label: string;
}

export interface Explanation<I, O> {
  key: string;
  /** The longest linearizable prefix: each op with the model state after it. */
  prefix: { op: Operation<I, O>; state: string }[];
  stateAfterPrefix: string;
  /** Ops that were callable right after the prefix, with why each cannot go next. */
  candidates: { op: Operation<I, O>; why: string }[];
  /** A smaller set of the partition's ops that is still not linearizable (what cannot be ordered). */
  core: Operation<I, O>[];
  coreNote: string;
}

/** Budget for shrinking one failing partition. */
const SHRINK_BUDGET_MS = 5_000;
/** Partitions larger than this (after cutting at the frontier) are not shrunk op by op. */
const SHRINK_MAX_OPS = 400;

/** Explains why `partition` (verdict illegal) cannot be linearized. */
export function explain<S, I, O>(model: Model<S, I, O>, partition: PartitionResult<I, O>): Explanation<I, O> {
  const { ops } = partition;
  let state = model.init();
  const prefix: { op: Operation<I, O>; state: string }[] = [];
  const done = new Set<number>();
  for (const position of partition.longest) {
    const op = ops[position];
    const after = model.step(state, op.input, op.output);
    if (after === IMPOSSIBLE) break; // cannot happen for a prefix the search accepted
    state = after;
    done.add(position);
    prefix.push({ op, state: model.describeState(state) });
  }
  // Callable next: not linearized, and called before the earliest return among the rest.
  let firstReturn = Infinity;
  ops.forEach((op, i) => {
    if (!done.has(i)) firstReturn = Math.min(firstReturn, op.ret);
  });
  const candidates: { op: Operation<I, O>; why: string }[] = [];
  ops.forEach((op, i) => {
    if (done.has(i) || op.call > firstReturn) return;
    const after = model.step(state, op.input, op.output);
    const why =
      after === IMPOSSIBLE
        ? `impossible in state ${model.describeState(state)}`
        : `possible (→ ${model.describeState(after)}) but every order after it fails`;
    candidates.push({ op, why });
  });
  const { core, note } = shrink(model, partition);
  return { key: partition.key, prefix, stateAfterPrefix: model.describeState(state), candidates, core, coreNote: note };
}

/**
 * Cuts the partition at the search frontier (later ops were never considered), then removes
 * read-only ops one at a time while the rest stays illegal. Removing an op that cannot change
 * the state never makes a linearizable history illegal, so what is left is still a witness.
 */
function shrink<S, I, O>(model: Model<S, I, O>, partition: PartitionResult<I, O>): { core: Operation<I, O>[]; note: string } {
  let core = partition.ops.filter((op) => op.call <= partition.frontierTime);
  const cut = partition.ops.length - core.length;
  if (core.length > SHRINK_MAX_OPS) {
    return { core, note: `${core.length} ops called before the search frontier (${cut} later ops cut); too many to shrink further` };
  }
  const deadline = performance.now() + SHRINK_BUDGET_MS;
  let removed = 0;
  for (let i = core.length - 1; i >= 0 && performance.now() < deadline; i--) {
    if (i >= core.length || !model.readOnly(core[i].input, core[i].output)) continue;
    const without = core.slice(0, i).concat(core.slice(i + 1));
    const result = checkPartition(model, partition.key, without, deadline);
    if (result.verdict === 'illegal') {
      core = without;
      removed++;
    }
  }
  return { core, note: `${core.length} ops: cut ${cut} ops called after the search frontier, then removed ${removed} reads` };
}

const ms = (ns: number) => (ns === Infinity ? '∞' : (ns / 1e6).toFixed(3));

/** One line per op: process, [call → return] in ms, the op, marks for prefix order and candidates. */
export function textTimeline<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  marks: Map<number, string> = new Map(),
): string {
  const lines = [...ops]
    .sort((a, b) => a.call - b.call || a.id - b.id)
    .map((op) => {
      const span = `[${ms(op.call).padStart(11)} → ${ms(op.ret).padStart(11)}]`;
      const mark = marks.get(op.id) ?? '';
      return `  ${mark.padEnd(6)} op ${String(op.id).padEnd(6)} p${String(op.process).padEnd(4)} ${span}  ${model.describeOp(op.input, op.output)}`;
    });
  return lines.join('\n');
}

/** The whole text report of a check: verdict, and for each illegal partition its explanation. */
export function textReport<S, I, O>(model: Model<S, I, O>, result: CheckResult<I, O>, maxExplained = 3): string {
  const out: string[] = [];
  const counts = { ok: 0, illegal: 0, unknown: 0 };
  for (const p of result.partitions) counts[p.verdict]++;
  out.push(
    `model ${model.name}: verdict ${result.verdict}; ${result.partitions.length} partitions ` +
      `(${counts.ok} ok, ${counts.illegal} illegal, ${counts.unknown} unknown); ` +
      `${result.dropped} unknown reads dropped; ${result.elapsedMs.toFixed(0)} ms`,
  );
  for (const p of result.partitions.filter((q) => q.verdict === 'unknown')) {
    out.push(`partition ${p.key}: unknown (${p.reason ?? 'no reason'}; ${p.ops.length} ops)`);
  }
  for (const p of result.partitions.filter((q) => q.verdict === 'illegal').slice(0, maxExplained)) {
    out.push('', explanationText(model, p, explain(model, p)));
  }
  return out.join('\n');
}

function explanationText<S, I, O>(model: Model<S, I, O>, p: PartitionResult<I, O>, e: Explanation<I, O>): string {
  const out: string[] = [];
  out.push(`=== partition ${p.key}: NOT linearizable (${p.ops.length} ops, ${p.steps} search steps)`);
  out.push(`longest linearizable prefix: ${e.prefix.length} ops (the rest cannot follow it)`);
  const tail = e.prefix.slice(-12);
  if (tail.length < e.prefix.length) out.push(`  … ${e.prefix.length - tail.length} earlier ops`);
  for (const { op, state } of tail) out.push(`  op ${op.id} p${op.process} ${model.describeOp(op.input, op.output)}  ⇒ ${state}`);
  out.push(`state after the prefix: ${e.stateAfterPrefix}`);
  out.push('ops that could go next, and why none can:');
  for (const { op, why } of e.candidates) out.push(`  op ${op.id} p${op.process} ${model.describeOp(op.input, op.output)}: ${why}`);
  out.push(`ops that cannot be ordered (${e.coreNote}):`);
  const marks = new Map<number, string>();
  e.prefix.forEach(({ op }, i) => marks.set(op.id, `#${i + 1}`));
  for (const { op } of e.candidates) marks.set(op.id, '!');
  out.push(textTimeline(model, e.core, marks));
  out.push(`sub-history of ${p.key} (#n: position in the longest prefix, !: a candidate that cannot go next):`);
  out.push(textTimeline(model, p.ops, marks));
  return out.join('\n');
}

const escapeHtml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A self-contained HTML timeline (Porcupine-style): one block per partition shown (illegal ones
 * first), one lane per process, each op a bar from call to return; ok green, unknown orange
 * (drawn to the end), prefix ops numbered, candidates red; fault windows shaded.
 */
export function htmlTimeline<S, I, O>(
  model: Model<S, I, O>,
  result: CheckResult<I, O>,
  bands: readonly TimelineBand[] = [],
  maxPartitions = 20,
): string {
  const shown = [...result.partitions]
    .sort((a, b) => rank(a) - rank(b))
    .slice(0, maxPartitions);
  const blocks = shown.map((p) => partitionHtml(model, p, bands));
  return `<!doctype html><html><head><meta charset="utf-8"><title>Tessera chaos: ${escapeHtml(model.name)}</title>
<style>
body{font:12px system-ui,sans-serif;margin:16px}
.part{margin:18px 0;border-top:1px solid #ccc;padding-top:8px}
.lanes{position:relative;border:1px solid #ddd;background:#fafafa;overflow-x:auto}
.lane{position:relative;height:22px;border-bottom:1px dotted #e4e4e4}
.lane span.name{position:absolute;left:2px;top:4px;color:#888;z-index:2}
.op{position:absolute;top:3px;height:15px;border-radius:3px;font-size:10px;line-height:15px;overflow:hidden;white-space:nowrap;padding:0 2px;box-sizing:border-box}
.ok{background:#9fd89f;border:1px solid #5a5}.unknown{background:#ffd08a;border:1px dashed #d80}
.cand{background:#f88;border:2px solid #c00}.inprefix{font-weight:bold}
.band{position:absolute;top:0;bottom:0;background:rgba(120,120,255,.12);border-left:1px solid #99f;z-index:0}
.band span{position:absolute;top:0;left:2px;color:#66c;font-size:9px}
.illegal h2{color:#c00}.ok h2{color:#080}
</style></head><body>
<h1>${escapeHtml(model.name)}: ${result.verdict}</h1>
<p>${result.partitions.length} partitions; showing ${shown.length}. Hover an op for its details.</p>
${blocks.join('\n')}
</body></html>
`;
}

function rank(p: PartitionResult<unknown, unknown>): number {
  return p.verdict === 'illegal' ? 0 : p.verdict === 'unknown' ? 1 : 2;
}

/** Bars drawn per partition at most: a browser still opens the file, and the interesting part is there. */
const MAX_OPS_DRAWN = 2_000;

/** The ops drawn: all of them, or a window (ending at the prefix's end when one is given, else the last ones), in call order. */
function opsToDraw<I, O>(p: PartitionResult<I, O>, prefixLength: number | null): PartitionResult<I, O>['ops'] {
  if (p.ops.length <= MAX_OPS_DRAWN) return p.ops;
  const sorted = [...p.ops].sort((a, b) => a.call - b.call);
  const end = prefixLength === null ? sorted.length : Math.min(sorted.length, prefixLength + MAX_OPS_DRAWN / 2);
  return sorted.slice(Math.max(0, end - MAX_OPS_DRAWN), end);
}

function partitionHtml<S, I, O>(model: Model<S, I, O>, p: PartitionResult<I, O>, bands: readonly TimelineBand[]): string {
  const explanation = p.verdict === 'illegal' ? explain(model, p) : null;
  // Numbers show the longest prefix where it matters: in a partition that cannot be linearized.
  const order = new Map<number, number>();
  if (explanation) p.longest.forEach((position, i) => order.set(p.ops[position].id, i + 1));
  const candidates = new Set(explanation?.candidates.map((c) => c.op.id) ?? []);
  // A long history draws only its last MAX_OPS_DRAWN ops (a legal 10-minute bank run has ~100k in
  // one partition); an illegal partition draws the ops around its longest linearizable prefix.
  const drawn = opsToDraw(p, explanation === null ? null : p.longest.length);
  let lo = Infinity;
  let hi = -Infinity;
  for (const op of drawn) {
    lo = Math.min(lo, op.call);
    hi = Math.max(hi, op.ret === Infinity ? op.call : op.ret);
  }
  hi += 1;
  const width = Math.max(1200, Math.min(12_000, drawn.length * 14));
  const x = (t: number) => 60 + ((Math.min(Math.max(t, lo), hi) - lo) / (hi - lo)) * (width - 80);
  const processes = [...new Set(drawn.map((op) => op.process))].sort((a, b) => a - b);
  const lanes = processes.map((process) => {
    const bars = drawn
      .filter((op) => op.process === process)
      .map((op) => {
        const classes = ['op', op.output === null ? 'unknown' : 'ok'];
        if (candidates.has(op.id)) classes.push('cand');
        const n = order.get(op.id);
        if (n !== undefined) classes.push('inprefix');
        const left = x(op.call);
        const right = op.ret === Infinity ? width - 10 : Math.max(x(op.ret), left + 3);
        const label = `${n !== undefined ? `#${n} ` : ''}${model.describeOp(op.input, op.output)}`;
        const title = `op ${op.id} p${op.process} [${ms(op.call)} → ${ms(op.ret)} ms] ${label}`;
        return `<div class="${classes.join(' ')}" style="left:${left.toFixed(1)}px;width:${(right - left).toFixed(1)}px" title="${escapeHtml(title)}">${escapeHtml(label)}</div>`;
      });
    return `<div class="lane" style="width:${width}px"><span class="name">p${process}</span>${bars.join('')}</div>`;
  });
  const shades = bands
    .filter((b) => b.end >= lo && b.start <= hi)
    .map((b) => {
      const left = x(Math.max(b.start, lo));
      const right = x(Math.min(b.end, hi));
      return `<div class="band" style="left:${left.toFixed(1)}px;width:${Math.max(1, right - left).toFixed(1)}px"><span>${escapeHtml(b.label)}</span></div>`;
    });
  const detail = explanation
    ? `<p>Longest linearizable prefix: ${explanation.prefix.length} ops, ending in state <b>${escapeHtml(explanation.stateAfterPrefix)}</b>. ` +
      `Cannot go next: ${explanation.candidates.map((c) => escapeHtml(`op ${c.op.id} ${model.describeOp(c.op.input, c.op.output)} (${c.why})`)).join('; ')}.</p>` +
      `<pre>${escapeHtml(textTimeline(model, explanation.core))}</pre>`
    : '';
  const note = drawn.length < p.ops.length ? `<p>Showing ${drawn.length} of ${p.ops.length} ops.</p>` : '';
  return `<div class="part ${p.verdict}"><h2>${escapeHtml(p.key)}: ${p.verdict} (${p.ops.length} ops)</h2>${detail}${note}
<div class="lanes">${shades.join('')}${lanes.join('')}</div></div>`;
}
