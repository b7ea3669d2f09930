// Bun imports C headers as text (`with { type: "text" }`) so that the
// compiled binary carries the runtime headers it compiles functions against.
declare module "*.h" {
  const text: string;
  export default text;
}
