// Package ccitt decodes and encodes bilevel fax images: ITU-T T.4 one-
// dimensional (Modified Huffman, "MH") and two-dimensional (Modified READ,
// "MR") coding as received by Group 3 fax machines, and ITU-T T.6 (Modified
// Modified READ, "MMR", Group 4).
//
// Decode reads what fax servers store as received: EOLs with or without
// fill bits before them (TIFF T4Options bit 2, "byte-aligned EOLs"), a tag
// bit after each EOL in MR (T.4 §4.2.2), the RTC at the end of the page
// (T.4 §4.1.4), and MH without EOLs with every row starting on a byte
// (TIFF compression 2). A Group 3 line that does not decode is replaced by
// the line above and decoding resumes at the next EOL, as T.4 Appendix I
// suggests for receivers; the count of such lines is the page's reception
// quality. Group 4 has no EOLs to resume from, so an error ends the page.
//
// EncodeG4 writes a Bitmap as T.6, the most compact of the three, which
// PDF's CCITTFaxDecode filter (ISO 32000-1 §7.4.6, K < 0) carries as is.
//
// golang.org/x/image/ccitt decodes MH and MMR but not MR or byte-aligned
// EOLs (the two most common in received faxes), hence this package; the
// tests check it against that package where both work.
package ccitt
