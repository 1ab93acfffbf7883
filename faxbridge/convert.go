package faxbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"nhsrelay/faxbridge/faxpdf"
	"nhsrelay/faxbridge/faxtiff"
)

// ErrNothingUsable means a file had no page that could be shown; the
// error's text says why, in words for the dead-letter list.
var ErrNothingUsable = errors.New("faxbridge: no readable page")

// Decoded is a received TIFF, read.
type Decoded struct {
	Pages    []*faxtiff.Page // every page in the file, readable or not
	Missing  string          // why pages after the last could not be read
	CSI      string          // the sender's fax ID, from the first page that has one
	Problems []string        // what the cover page must say about unreadable or damaged pages
	Hashes   []string        // per page: hashOf the image, "" where there is none
}

// Shown is how many pages have an image.
func (d *Decoded) Shown() int {
	n := 0
	for _, p := range d.Pages {
		if p.Image != nil {
			n++
		}
	}
	return n
}

// Decode reads a TIFF fax. It returns an error wrapping ErrNothingUsable
// (or faxtiff.ErrNotTIFF) when no page can be shown.
func Decode(data []byte, lim faxtiff.Limits) (*Decoded, error) {
	f, err := faxtiff.Read(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNothingUsable, err)
	}
	d := &Decoded{Pages: f.Pages, Missing: f.Missing}
	for _, p := range f.Pages {
		if d.CSI == "" {
			d.CSI = strings.TrimSpace(p.CSI)
		}
		d.Hashes = append(d.Hashes, hashOf(p))
		switch {
		case p.Image == nil:
			d.Problems = append(d.Problems, fmt.Sprintf("Page %d could not be shown: %v.", p.Number, p.Err))
		case p.Err != nil:
			d.Problems = append(d.Problems, fmt.Sprintf("Page %d is incomplete: %d of its %d lines arrived (%v); the rest is left blank.",
				p.Number, p.Rows, p.Height, p.Err))
		}
		if p.BadLines > 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("Page %d: %d lines were damaged on the line and repeat the line above.", p.Number, p.BadLines))
		}
	}
	if f.Missing != "" {
		d.Problems = append(d.Problems, fmt.Sprintf("Any pages after page %d could not be read: %s.", len(f.Pages), f.Missing))
	}
	if d.Shown() == 0 {
		why := "the file has no pages"
		if len(d.Problems) > 0 {
			why = strings.Join(d.Problems, " ")
		}
		return d, fmt.Errorf("%w: %s", ErrNothingUsable, why)
	}
	return d, nil
}

// hashOf is a page's fingerprint for spotting a resend: SHA-256 of the
// image below the top 4% (where the sending machine prints its header
// line with the time and page number, which differ on every send). An
// image that differs anywhere else gets another hash, so no page that
// differs is ever taken as a repeat.
func hashOf(p *faxtiff.Page) string {
	if p.Image == nil || p.Err != nil {
		return ""
	}
	skip := p.Image.Height / 25
	sum := sha256.Sum256(p.Image.Pix[skip*p.Image.Stride:])
	return hex.EncodeToString(sum[:16])
}

// CoverInfo is what the cover page says beyond the pages themselves.
type CoverInfo struct {
	Calling      string // calling number (caller ID), if known
	CallerName   string
	Called       string // the number dialled, E.164
	Endpoint     string // the receiving endpoint's address
	Organisation string // its organisation, "NAME (ODS)"
	Received     time.Time
	Ref          string // the fax's reference ID
	Quality      string // reception quality as the fax server reported it
	Repeats      []string
}

// Title is the message subject and the PDF's title:
// "Fax from <calling number or CSI> (<n> pages)".
func Title(sender string, pages int) string {
	if sender == "" {
		sender = "an unknown sender"
	}
	unit := "pages"
	if pages == 1 {
		unit = "page"
	}
	return fmt.Sprintf("Fax from %s (%d %s)", sender, pages, unit)
}

// sender names who sent the fax: the calling number, else the CSI.
func sender(calling, csi string) string {
	if calling != "" {
		return calling
	}
	return csi
}

// Render lays out d as a PDF with a cover page.
func Render(d *Decoded, c CoverInfo) ([]byte, error) {
	dash := func(s string) string {
		if strings.TrimSpace(s) == "" {
			return "-"
		}
		return s
	}
	cov := faxpdf.Cover{Title: Title(sender(c.Calling, d.CSI), len(d.Pages))}
	cov.Rows = [][2]string{
		{"From (calling number)", dash(c.Calling)},
		{"Sender's fax ID (CSI)", dash(d.CSI)},
		{"Caller name", dash(c.CallerName)},
		{"Number dialled", dash(c.Called)},
		{"Delivered to", dash(c.Endpoint)},
		{"Organisation", dash(c.Organisation)},
		{"Received", c.Received.UTC().Format("2 Jan 2006 15:04:05 MST")},
		{"Pages", fmt.Sprintf("%d received, %d shown after this cover page", len(d.Pages), d.Shown())},
		{"Reception quality", dash(c.Quality)},
		{"Reference", dash(c.Ref)},
	}
	cov.Notes = append(append([]string(nil), d.Problems...), c.Repeats...)
	var pages []faxpdf.Page
	for _, p := range d.Pages {
		if p.Image != nil {
			pages = append(pages, faxpdf.Page{Image: p.Image, XDPI: p.XDPI, YDPI: p.YDPI})
		}
	}
	return faxpdf.Render(cov, pages, c.Received)
}
