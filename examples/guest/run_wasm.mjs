// SPDX-License-Identifier: MIT OR Apache-2.0
// Run a WASI (preview 1) command under Node: node run_wasm.mjs PROGRAM.wasm
// Its exit status is the program's (proc_exit).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const wasi = new WASI({ version: 'preview1', args: [process.argv[2]], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
