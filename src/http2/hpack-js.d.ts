// The one file of hpack.js Tessera uses: RFC 7541's Huffman code table (Appendix B).
declare module 'hpack.js/lib/hpack/huffman.js' {
  /** `encode[symbol]` is [code length in bits, code], for symbols 0..256 (256 is EOS). */
  export const encode: [number, number][];
}
