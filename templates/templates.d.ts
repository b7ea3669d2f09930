// Template files are bundled as text (`with { type: "text" }`), so the single
// binary carries them (see index.ts).
declare module "*.tmpl" {
  const text: string;
  export default text;
}
