package faxtiff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"golang.org/x/image/tiff/lzw"

	"nhsrelay/faxbridge/ccitt"
)

// Limits bound what Read allocates. The zero value means the defaults.
type Limits struct {
	MaxPages  int // pages read; more are reported as not read (default 500)
	MaxWidth  int // pixels (default 8192: A3 at 400 dpi is 4864)
	MaxHeight int // pixels (default 16384: an A4 page at 400 dpi is 4680)
	MaxPixels int // all pages together (default 1<<30, 128 MiB of bitmaps)
}

func (l Limits) withDefaults() Limits {
	if l.MaxPages <= 0 {
		l.MaxPages = 500
	}
	if l.MaxWidth <= 0 {
		l.MaxWidth = 8192
	}
	if l.MaxHeight <= 0 {
		l.MaxHeight = 16384
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = 1 << 30
	}
	return l
}

// File is a read TIFF: its pages in order, and, if the chain of pages
// broke off, why (Missing), so a page is never silently dropped.
type File struct {
	Pages []*Page
	// Missing says why the pages after the last one in Pages could not be
	// read ("" when the chain of directories ended normally).
	Missing string
}

// Page is one page (IFD) of a file.
type Page struct {
	Number        int // 1-based, in file order
	Width, Height int
	XDPI, YDPI    float64 // pixels per inch
	Compression   int
	Coding        string // human-readable compression
	CSI           string // ImageDescription: the sender's fax ID as fax servers store it
	// Image is the page, nil if nothing of it could be decoded.
	Image *ccitt.Bitmap
	// Rows is how many rows decoded; fewer than Height means the rest of
	// Image is white and Err says why.
	Rows     int
	BadLines int // Group 3 lines repaired (reception quality)
	Err      error
}

// OK reports whether the whole page decoded.
func (p *Page) OK() bool { return p.Image != nil && p.Err == nil }

// Read reads every page of data. It returns an error only when data is not
// a TIFF at all (wrapping ErrNotTIFF); problems with single pages are in
// the pages.
func Read(data []byte, lim Limits) (*File, error) {
	lim = lim.withDefaults()
	r, off, err := newReader(data)
	if err != nil {
		return nil, err
	}
	f := &File{}
	seen := map[uint32]bool{}
	budget := lim.MaxPixels
	for off != 0 {
		if seen[off] {
			f.Missing = fmt.Sprintf("the directory at byte %d repeats an earlier one (a loop)", off)
			break
		}
		seen[off] = true
		if len(f.Pages) >= lim.MaxPages {
			f.Missing = fmt.Sprintf("the file has more than %d pages, the most we read", lim.MaxPages)
			break
		}
		fields, next, err := r.ifd(off)
		if err != nil {
			f.Missing = err.Error()
			break
		}
		off = next
		if r.uint(fields, tagNewSubfileType, 0)&1 != 0 {
			continue // a reduced-resolution copy (thumbnail), not a page
		}
		p := r.page(fields, len(f.Pages)+1, lim, &budget)
		f.Pages = append(f.Pages, p)
	}
	return f, nil
}

// page reads and decodes one page; budget is the pixels still allowed.
func (r *reader) page(fields map[uint16]field, n int, lim Limits, budget *int) *Page {
	p := &Page{
		Number:      n,
		Width:       int(min(r.uint(fields, tagImageWidth, 0), 1<<31)),
		Height:      int(min(r.uint(fields, tagImageLength, 0), 1<<31)),
		Compression: int(r.uint(fields, tagCompression, CompNone)),
		CSI:         ascii(fields[tagImageDescription]),
	}
	p.Coding = codingName(p.Compression, r.uint(fields, tagT4Options, 0))
	p.XDPI, p.YDPI = r.resolution(fields, p.Height)
	switch {
	case p.Width <= 0 || p.Height <= 0:
		p.Err = fmt.Errorf("page %d has no size (width %d, height %d)", n, p.Width, p.Height)
	case p.Width > lim.MaxWidth || p.Height > lim.MaxHeight:
		p.Err = fmt.Errorf("page %d is %d×%d pixels, more than the %d×%d we decode", n, p.Width, p.Height, lim.MaxWidth, lim.MaxHeight)
	case p.Width*p.Height > *budget:
		p.Err = fmt.Errorf("page %d: the file's pages together exceed %d pixels, the most we decode", n, lim.MaxPixels)
	case r.uint(fields, tagBitsPerSample, 1) != 1 || r.uint(fields, tagSamplesPerPixel, 1) != 1:
		p.Err = fmt.Errorf("page %d is not black and white (%d bits per sample, %d samples per pixel); it is kept in the attached TIFF",
			n, r.uint(fields, tagBitsPerSample, 1), r.uint(fields, tagSamplesPerPixel, 1))
	}
	if p.Err != nil {
		return p
	}
	*budget -= p.Width * p.Height
	p.Image = ccitt.NewBitmap(p.Width, p.Height)
	p.decode(r, fields)
	if p.Rows == 0 && p.Err != nil {
		p.Image = nil
	}
	return p
}

// resolution returns the page's dots per inch; a fax with none stated is
// taken as 204 × 98 or 204 × 196 by its height (T.4 §2.2).
func (r *reader) resolution(fields map[uint16]field, height int) (x, y float64) {
	x, y = r.rational(fields[tagXResolution]), r.rational(fields[tagYResolution])
	if r.uint(fields, tagResolutionUnit, 2) == 3 { // centimetres
		x, y = x*2.54, y*2.54
	}
	if x < 50 || x > 2400 {
		x = 204
	}
	if y < 50 || y > 2400 {
		y = 196
		if height < 1600 {
			y = 98
		}
	}
	return x, y
}

func codingName(comp int, t4 uint64) string {
	switch comp {
	case CompNone:
		return "uncompressed"
	case CompRLE:
		return ccitt.RLE.String()
	case CompG3:
		if t4&1 != 0 {
			return ccitt.MR.String()
		}
		return ccitt.MH.String()
	case CompG4:
		return ccitt.MMR.String()
	case CompLZW:
		return "LZW"
	case CompPackBits:
		return "PackBits"
	case CompJPEG, CompJPEGOld:
		return "JPEG (colour fax)"
	case CompJBIG:
		return "JBIG"
	}
	return fmt.Sprintf("compression %d", comp)
}

// decode fills p.Image strip by strip; each strip is coded on its own
// (TIFF 6.0 §11: a CCITT strip starts afresh).
func (p *Page) decode(r *reader, fields map[uint16]field) {
	offs, counts := r.uints(fields[tagStripOffsets]), r.uints(fields[tagStripByteCounts])
	rps := int(min(r.uint(fields, tagRowsPerStrip, uint64(p.Height)), uint64(p.Height)))
	if rps <= 0 {
		rps = p.Height
	}
	if len(offs) == 0 {
		p.Err = fmt.Errorf("page %d has no image data (no strips)", p.Number)
		return
	}
	fill := r.uint(fields, tagFillOrder, 1)
	t4 := r.uint(fields, tagT4Options, 0)
	photometric := r.uint(fields, tagPhotometric, 0)
	for s, y := 0, 0; y < p.Height; s, y = s+1, y+rps {
		rows := min(rps, p.Height-y)
		if s >= len(offs) {
			p.Err = fmt.Errorf("page %d: rows %d to %d have no strip", p.Number, y+1, p.Height)
			return
		}
		data, cut := stripData(r.data, offs[s], counts, s)
		if fill == 2 {
			data = reverseBits(data)
		}
		dst := &ccitt.Bitmap{Width: p.Width, Height: rows, Stride: p.Image.Stride,
			Pix: p.Image.Pix[y*p.Image.Stride : (y+rows)*p.Image.Stride]}
		got, bad, err := decodeStrip(data, p.Compression, t4, photometric, dst)
		p.BadLines += bad
		p.Rows = y + got
		if err == nil && cut && got < rows {
			err = ccitt.ErrTruncated
		}
		if err == nil {
			p.Rows = y + rows // an RTC or EOFB before the last row: the rest is white
		}
		if errors.Is(err, errUnsupported) {
			p.Err = fmt.Errorf("page %d is %s: %w", p.Number, p.Coding, err)
			return
		}
		if err != nil {
			p.Err = fmt.Errorf("page %d: %s data stops at row %d of %d: %w", p.Number, p.Coding, p.Rows, p.Height, err)
			return
		}
	}
}

// stripData returns strip s's bytes, clipped to the file (cut reports a
// clip: the file ends inside the strip).
func stripData(file []byte, off uint64, counts []uint64, s int) (data []byte, cut bool) {
	if off >= uint64(len(file)) {
		return nil, true
	}
	end := uint64(len(file))
	if s < len(counts) && counts[s] > 0 {
		if off+counts[s] <= end {
			end = off + counts[s]
		} else {
			cut = true
		}
	}
	return file[off:end], cut
}

// errUnsupported is a compression we cannot show.
var errUnsupported = errors.New("this compression cannot be shown here; the page is kept in the attached TIFF")

// decodeStrip decodes one strip into dst, returning rows decoded and
// repaired lines.
func decodeStrip(data []byte, comp int, t4, photometric uint64, dst *ccitt.Bitmap) (int, int, error) {
	switch comp {
	case CompG3, CompG4, CompRLE:
		c := ccitt.MH
		switch {
		case comp == CompG4:
			c = ccitt.MMR
		case comp == CompRLE:
			c = ccitt.RLE
		case t4&1 != 0:
			c = ccitt.MR
		}
		res, err := ccitt.Decode(data, c, dst)
		return res.Rows, res.BadLines, err
	case CompNone, CompPackBits, CompLZW:
		raw, err := inflate(data, comp, dst.Stride*dst.Height)
		rows := min(len(raw)/dst.Stride, dst.Height)
		copy(dst.Pix, raw[:rows*dst.Stride])
		if photometric == 1 { // BlackIsZero
			part := &ccitt.Bitmap{Width: dst.Width, Height: rows, Stride: dst.Stride, Pix: dst.Pix[:rows*dst.Stride]}
			part.Invert()
		}
		if err == nil && rows < dst.Height {
			err = ccitt.ErrTruncated
		}
		return rows, 0, err
	}
	return 0, 0, errUnsupported
}

// inflate returns up to limit bytes of a strip's uncompressed data.
func inflate(data []byte, comp, limit int) ([]byte, error) {
	switch comp {
	case CompPackBits:
		return unpackBits(data, limit)
	case CompLZW: // TIFF 6.0 §13, MSB first with the "early change"
		rd := lzw.NewReader(bytes.NewReader(data), lzw.MSB, 8)
		defer rd.Close()
		out, err := io.ReadAll(io.LimitReader(rd, int64(limit)))
		if err != nil && len(out) < limit {
			return out, fmt.Errorf("LZW: %w", err)
		}
		return out, nil
	}
	return data[:min(len(data), limit)], nil
}

// unpackBits decodes PackBits (TIFF 6.0 §9) up to limit bytes.
func unpackBits(src []byte, limit int) ([]byte, error) {
	out := make([]byte, 0, limit)
	for i := 0; i < len(src) && len(out) < limit; {
		n := int(int8(src[i]))
		i++
		switch {
		case n >= 0: // copy the next n+1 bytes
			end := min(i+n+1, len(src))
			out = append(out, src[i:end]...)
			i = end
		case n != -128: // repeat the next byte 1-n times
			if i >= len(src) {
				break
			}
			for range 1 - n {
				out = append(out, src[i])
			}
			i++
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// reverseBits returns a copy of data with each byte's bits reversed
// (FillOrder 2: the first pixel in the least significant bit).
func reverseBits(data []byte) []byte {
	out := make([]byte, len(data))
	for i, b := range data {
		out[i] = bits.Reverse8(b)
	}
	return out
}
