// Per-invocation cost of running a function step in Node's `vm` module, the baseline of
// bench/function/run. Each call does what `para_js::run_function` does: a new context
// (`vm.runInNewContext`), compiling the function's source, parsing the parameters' JSON, calling
// the function with (parameters, {}), awaiting the result if it is a promise, and JSON.stringify.
//
// Usage: node node.js <functions.json> [rounds] [calls per round, at least; more if a round would
// take less than a quarter of a second]
// Prints one line per round and function: `<name> <wall-clock µs per call> <on-CPU µs per call>`.
'use strict';
const fs = require('fs');
const vm = require('vm');

const [path, rounds = '5', calls = '200'] = process.argv.slice(2);
const functions = JSON.parse(fs.readFileSync(path, 'utf8'));

function invoke(code, parametersJson) {
  const result = vm.runInNewContext(
    `'use strict'; (${code}\n)(JSON.parse(parametersJson), {})`,
    { parametersJson },
  );
  // The result comes from another context: test for a thenable, not `instanceof Promise`.
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    return Promise.resolve(result).then((value) => JSON.stringify(value));
  }
  return JSON.stringify(result);
}

// Time the main thread (which runs the JavaScript) has spent on a CPU, from Linux's schedstat;
// V8's helper threads are not counted, which if anything favours Node.
function cpuNanos() {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

async function main() {
  // Rounds of at least MIN_ROUND seconds: schedstat's on-CPU time advances in scheduler ticks
  // (a few milliseconds) while the thread runs, too coarse for a shorter round.
  const MIN_ROUND = 0.25;
  const perRound = new Map();
  for (const f of functions) {
    const parameters = JSON.stringify(f.parameters);
    console.error(`${f.name}: ${await invoke(f.code, parameters)}`);
    const warm = Math.max(1, Math.floor(Number(calls) / 4));
    const started = process.hrtime.bigint();
    for (let i = 0; i < warm; i++) await invoke(f.code, parameters);
    const each = Number(process.hrtime.bigint() - started) / 1e9 / warm;
    perRound.set(f, Math.max(Number(calls), Math.ceil(MIN_ROUND / Math.max(each, 1e-9))));
  }
  for (let r = 0; r < Number(rounds); r++) {
    for (const f of functions) {
      const parameters = JSON.stringify(f.parameters);
      const calls = perRound.get(f);
      const started = process.hrtime.bigint();
      const cpu = cpuNanos();
      for (let i = 0; i < calls; i++) {
        const out = invoke(f.code, parameters);
        if (typeof out !== 'string' && out !== undefined) await out;
      }
      const wall = Number(process.hrtime.bigint() - started) / 1e3 / calls;
      const onCpu = cpu === null ? '-' : ((cpuNanos() - cpu) / 1e3 / calls).toFixed(2);
      console.log(`${f.name} ${wall.toFixed(2)} ${onCpu}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
