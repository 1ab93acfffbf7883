// Package faxtiff reads received faxes stored as TIFF (TIFF 6.0, and the
// Class F profile of RFC 3949 / TIFF-F): every page (IFD), every strip,
// FillOrder 1 and 2, CCITT G3 1D/2D and G4 (through faxbridge/ccitt),
// uncompressed, PackBits and LZW bilevel data, resolution tags and the
// sender's CSI in ImageDescription.
//
// Read never fails a whole file for one bad page: each Page says whether it
// decoded, partly or not at all, and why. Limits bound the pixels it will
// allocate, so a hostile header cannot make it take gigabytes (a
// decompression bomb).
package faxtiff
