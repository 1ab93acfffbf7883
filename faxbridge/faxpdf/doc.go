// Package faxpdf renders a received fax as PDF: a cover page that says
// who sent it, to whom, when, and what could not be shown, then one page
// per fax page.
//
// The cover page is laid out with codeberg.org/go-pdf/fpdf. That library
// cannot carry CCITT data, so the fax pages are added to its output as a
// PDF incremental update (ISO 32000-1 §7.5.6): for each page an image
// XObject coded G4 with the CCITTFaxDecode filter (§7.4.6, K = -1), the
// form bilevel fax was sent in, which keeps the PDF about as small as the
// fax itself. Every page is A4 portrait; the fax image keeps its true
// physical size and aspect ratio (its resolution is honoured, so a
// normal-resolution page is not squashed), scaled down only as far as it
// must be to fit (a 215 mm fax line on 210 mm paper).
package faxpdf
