// Bun imports C headers as text (`with { type: "text" }`) so that the
// compiled binary carries the runtime headers it compiles functions against.
declare module "*.h" {
  const text: string;
  export default text;
}

// Files embedded with `with { type: "file" }` import as their path.
declare module "swagger-ui-dist/*" {
  const path: string;
  export default path;
}

declare module "*.so" {
  const path: string;
  export default path;
}

declare module "*.wasm" {
  const path: string;
  export default path;
}
