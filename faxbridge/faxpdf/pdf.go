package faxpdf

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"nhsrelay/faxbridge/ccitt"
)

// A4 in PDF points (1/72 inch): 210 × 297 mm.
const (
	a4W = 595.28
	a4H = 841.89
)

// Cover is what the cover page says.
type Cover struct {
	Title string      // "Fax from +441632960123 (3 pages)"
	Rows  [][2]string // label, value; shown in order
	Notes []string    // unreadable pages, repeats, reception problems: shown highlighted
}

// Page is one fax page to show.
type Page struct {
	Image      *ccitt.Bitmap
	XDPI, YDPI float64
}

// Render returns the PDF: cover page, then pages.
func Render(c Cover, pages []Page, created time.Time) ([]byte, error) {
	cover, err := coverPDF(c, created)
	if err != nil {
		return nil, err
	}
	return appendPages(cover, pages)
}

// coverPDF lays out the cover page with fpdf.
func coverPDF(c Cover, created time.Time) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(true)
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetCreator("nhsrelay fax bridge", false)
	pdf.SetTitle(latin(c.Title), false)
	pdf.SetMargins(20, 20, 20)
	pdf.SetAutoPageBreak(true, 20)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 18)
	pdf.MultiCell(0, 9, latin(c.Title), "", "L", false)
	pdf.Ln(4)
	for _, r := range c.Rows {
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(55, 7, latin(r[0]), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 11)
		pdf.MultiCell(0, 7, latin(r[1]), "", "L", false)
	}
	if len(c.Notes) > 0 {
		pdf.Ln(6)
		pdf.SetFont("Helvetica", "B", 12)
		pdf.SetTextColor(160, 0, 0)
		pdf.MultiCell(0, 7, "Please note", "", "L", false)
		pdf.SetFont("Helvetica", "", 11)
		for _, n := range c.Notes {
			pdf.MultiCell(0, 6, "- "+latin(n), "", "L", false)
		}
		pdf.SetTextColor(0, 0, 0)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("faxpdf: cover page: %w", err)
	}
	return buf.Bytes(), nil
}

// latin keeps printable ASCII: a CSI or caller name is whatever the far
// end sent, and the core fonts carry only WinAnsi.
func latin(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

var (
	reStartXref = regexp.MustCompile(`startxref\s+(\d+)\s+%%EOF\s*$`)
	reSize      = regexp.MustCompile(`/Size (\d+)`)
	reRoot      = regexp.MustCompile(`/Root (\d+) 0 R`)
	reInfo      = regexp.MustCompile(`/Info (\d+) 0 R`)
	reKids      = regexp.MustCompile(`(?s)\n1 0 obj\s*<</Type /Pages\s*/Kids \[([^\]]*)\]`)
)

// appendPages adds the fax pages to base, fpdf's one-page PDF, as an
// incremental update (ISO 32000-1 §7.5.6): new objects, a new page tree
// root (object 1, as fpdf numbers it), a cross-reference section for them
// and a trailer whose /Prev points at base's.
func appendPages(base []byte, pages []Page) ([]byte, error) {
	tail := base[max(0, len(base)-1024):]
	sx, size := reStartXref.FindSubmatch(base), reSize.FindAllSubmatch(tail, -1)
	root, info := reRoot.FindAllSubmatch(tail, -1), reInfo.FindAllSubmatch(tail, -1)
	kids := reKids.FindSubmatch(base)
	if sx == nil || size == nil || root == nil || info == nil || kids == nil {
		return nil, errors.New("faxpdf: the cover page PDF is not laid out as expected")
	}
	next, _ := strconv.Atoi(string(size[len(size)-1][1]))
	out := bytes.NewBuffer(make([]byte, 0, len(base)+len(pages)*8192))
	out.Write(base)
	offsets := map[int]int{}
	obj := func(n int, head string, stream []byte) {
		offsets[n] = out.Len()
		fmt.Fprintf(out, "%d 0 obj\n%s", n, head)
		if stream != nil {
			out.WriteString("\nstream\n")
			out.Write(stream)
			out.WriteString("\nendstream")
		}
		out.WriteString("\nendobj\n")
	}
	kidRefs := strings.TrimSpace(string(kids[1]))
	for _, p := range pages {
		img, content, page := next, next+1, next+2
		next += 3
		b := p.Image
		g4 := ccitt.EncodeG4(b)
		obj(img, fmt.Sprintf("<</Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"+
			" /BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms <</K -1 /Columns %d /Rows %d>> /Length %d>>",
			b.Width, b.Height, b.Width, b.Height, len(g4)), g4)
		w, h, x, y := place(b, p.XDPI, p.YDPI)
		draw := fmt.Appendf(nil, "q %.2f 0 0 %.2f %.2f %.2f cm /Fax Do Q", w, h, x, y)
		obj(content, fmt.Sprintf("<</Length %d>>", len(draw)), draw)
		obj(page, fmt.Sprintf("<</Type /Page /Parent 1 0 R /MediaBox [0 0 %.2f %.2f]"+
			" /Resources <</XObject <</Fax %d 0 R>>>> /Contents %d 0 R>>", a4W, a4H, img, content), nil)
		kidRefs += fmt.Sprintf(" %d 0 R", page)
	}
	obj(1, fmt.Sprintf("<</Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 %.2f %.2f]>>",
		kidRefs, 1+len(pages), a4W, a4H), nil)

	xref := out.Len()
	out.WriteString("xref\n")
	fmt.Fprintf(out, "1 1\n%010d 00000 n \n", offsets[1])
	if len(pages) > 0 {
		first := next - 3*len(pages)
		fmt.Fprintf(out, "%d %d\n", first, 3*len(pages))
		for n := first; n < next; n++ {
			fmt.Fprintf(out, "%010d 00000 n \n", offsets[n])
		}
	}
	fmt.Fprintf(out, "trailer\n<</Size %d /Root %s 0 R /Info %s 0 R /Prev %s>>\nstartxref\n%d\n%%%%EOF\n",
		next, root[len(root)-1][1], info[len(info)-1][1], sx[1], xref)
	return out.Bytes(), nil
}

// place returns the image's size and position on an A4 page in points:
// its physical size at its resolution, scaled down uniformly only if it
// does not fit, centred.
func place(b *ccitt.Bitmap, xdpi, ydpi float64) (w, h, x, y float64) {
	w, h = float64(b.Width)/xdpi*72, float64(b.Height)/ydpi*72
	s := min(1, a4W/w, a4H/h)
	w, h = w*s, h*s
	return w, h, (a4W - w) / 2, (a4H - h) / 2
}
