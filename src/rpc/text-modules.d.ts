// Text imports (`with { type: "text" }`) of the embedded .proto files.
declare module "*.proto" {
  const text: string;
  export default text;
}
