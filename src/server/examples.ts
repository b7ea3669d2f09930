// The example functions built into the single binary, so `thaw serve
// --examples` works from dist/thaw with nothing beside it.
// scripts/build-binary.sh builds functions/build first; Bun embeds each
// imported file and the import is its path inside the binary. server.ts
// imports this module only when the examples directory does not exist (in
// the binary), so a checkout that never built the examples still starts.

import hello from "../../functions/build/hello.wasm" with { type: "file" };
import json from "../../functions/build/json.wasm" with { type: "file" };
import primes from "../../functions/build/primes.wasm" with { type: "file" };
import thumbnail from "../../functions/build/thumbnail.wasm" with { type: "file" };
import wordcount from "../../functions/build/wordcount.wasm" with { type: "file" };

/** Example name -> path of its embedded .wasm. */
export const EMBEDDED_EXAMPLES: Record<string, string> = { hello, json, thumbnail, wordcount, primes };
