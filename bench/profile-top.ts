// Summarizes V8 .cpuprofile files (node --cpu-prof, bench/cpu-profile.mjs): where the CPU goes.
//   npx tsx bench/profile-top.ts <file.cpuprofile>... [--top N]
import { readFileSync } from 'node:fs';
import { summarizeProfile } from './compare/cpuprofile.ts';
import type { CpuProfile } from './compare/cpuprofile.ts';

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
const files = topIndex < 0 ? args : args.filter((_, i) => i !== topIndex && i !== topIndex + 1);
for (const file of files) {
  console.log(`== ${file}`);
  console.log(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top));
}
