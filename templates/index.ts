// The templates `thaw new` writes, one set per language, imported as text so
// that `bun build --compile` bundles them into the single binary (a template
// read from disk at run time would be missing there).
//
// Each file is the text of one file of the new function with `{{name}}` (and
// in the READMEs a few more `{{...}}` fields) where the function's name goes.
// Template files end in .tmpl so that no tool mistakes them for the project's
// own sources (index.ts.tmpl is AssemblyScript, not TypeScript). A language
// has a source for each mode (stdin→stdout, or WAGI with --http), under the
// same file name, and files both modes share (the build script, and for
// AssemblyScript its package.json and asconfig.json).

/// <reference path="./templates.d.ts" />
import asHttp from "./assemblyscript/http.ts.tmpl" with { type: "text" };
import asMain from "./assemblyscript/index.ts.tmpl" with { type: "text" };
import asBuild from "./assemblyscript/build.sh.tmpl" with { type: "text" };
import asConfig from "./assemblyscript/asconfig.json.tmpl" with { type: "text" };
import asPackage from "./assemblyscript/package.json.tmpl" with { type: "text" };
import cHttp from "./c/http.c.tmpl" with { type: "text" };
import cMain from "./c/main.c.tmpl" with { type: "text" };
import cBuild from "./c/build.sh.tmpl" with { type: "text" };
import cppHttp from "./cpp/http.cpp.tmpl" with { type: "text" };
import cppMain from "./cpp/main.cpp.tmpl" with { type: "text" };
import cppBuild from "./cpp/build.sh.tmpl" with { type: "text" };
import rustHttp from "./rust/http.rs.tmpl" with { type: "text" };
import rustMain from "./rust/main.rs.tmpl" with { type: "text" };
import rustBuild from "./rust/build.sh.tmpl" with { type: "text" };
import gitignore from "./gitignore.tmpl" with { type: "text" };
import readmeHttp from "./README.http.md.tmpl" with { type: "text" };
import readmeStdio from "./README.stdio.md.tmpl" with { type: "text" };

export interface Language {
  /** As people write it, for the README. */
  title: string;
  /** Path of the source file, relative to the function's directory. */
  source: string;
  stdio: string;
  http: string;
  /** Other files, by path, for both modes. */
  files: Record<string, string>;
}

export const LANGUAGES: ReadonlyMap<string, Language> = new Map<string, Language>([
  ["c", { title: "C", source: "main.c", stdio: cMain, http: cHttp, files: { "build.sh": cBuild } }],
  ["cpp", { title: "C++", source: "main.cpp", stdio: cppMain, http: cppHttp, files: { "build.sh": cppBuild } }],
  ["rust", { title: "Rust", source: "main.rs", stdio: rustMain, http: rustHttp, files: { "build.sh": rustBuild } }],
  [
    "assemblyscript",
    {
      title: "AssemblyScript",
      source: "assembly/index.ts",
      stdio: asMain,
      http: asHttp,
      files: { "build.sh": asBuild, "package.json": asPackage, "asconfig.json": asConfig },
    },
  ],
]);

export const COMMON = { gitignore, readmeHttp, readmeStdio };
