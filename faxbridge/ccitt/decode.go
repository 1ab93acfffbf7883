package ccitt

import (
	"errors"
	"fmt"
)

// Coding is how a page's data is coded.
type Coding int

const (
	MH  Coding = iota // T.4 one-dimensional, lines start with EOL (TIFF compression 3)
	MR                // T.4 two-dimensional, EOL + tag bit before each line (T4Options bit 0)
	MMR               // T.6 (TIFF compression 4)
	// RLE is MH without EOLs, each row starting on a byte boundary (TIFF
	// compression 2, "CCITT modified Huffman RLE").
	RLE
)

func (c Coding) String() string {
	switch c {
	case MH:
		return "G3 1D (MH)"
	case MR:
		return "G3 2D (MR)"
	case MMR:
		return "G4 (MMR)"
	case RLE:
		return "MH RLE"
	}
	return fmt.Sprintf("Coding(%d)", int(c))
}

// Result says how much of a page decoded.
type Result struct {
	Rows int // rows decoded; the rest of the bitmap stays white
	// BadLines counts Group 3 lines that did not decode and were replaced
	// by the line above (the page's reception quality, T.4 Appendix I).
	BadLines int
}

// Errors Decode returns, wrapped with where it stopped.
var (
	ErrTruncated = errors.New("ccitt: data ends before the last row")
	ErrCorrupt   = errors.New("ccitt: invalid code")
)

// Decode decodes data, coded as c, into dst (dst's Width and Height say the
// page's size; it should be white). It returns how many rows decoded; an
// error means the rows after Result.Rows are missing, and wraps
// ErrTruncated or ErrCorrupt. Decode never reads past data and takes time
// linear in len(data) + dst's size.
func Decode(data []byte, c Coding, dst *Bitmap) (Result, error) {
	d := decoder{r: bitReader{data: data}, w: dst.Width}
	d.ref = make([]int, 0, 64)
	d.cur = make([]int, 0, 64)
	switch c {
	case MMR:
		return d.mmr(dst)
	case RLE:
		return d.rle(dst)
	default:
		return d.g3(dst, c == MR)
	}
}

type decoder struct {
	r        bitReader
	w        int
	ref, cur []int // changing elements of the reference and coding lines
}

// errAt wraps err with the row it happened on.
func errAt(err error, row int) error { return fmt.Errorf("%w (row %d)", err, row+1) }

// g3 decodes T.4 data: each line after an EOL (optionally preceded by
// fill bits, T.4 §4.1.3), in MR followed by a tag bit, 1 for a
// one-dimensionally coded line (T.4 §4.2.2). Consecutive EOLs are the RTC
// that ends the page (T.4 §4.1.4).
func (d *decoder) g3(dst *Bitmap, twoD bool) (Result, error) {
	var res Result
	oneD := true // a first line without EOL and tag is coded 1D
	for res.Rows < dst.Height {
		eols := 0
		for d.r.peek(11) == 0 && !d.r.exhausted() {
			for d.r.peek(1) == 0 && !d.r.exhausted() {
				d.r.skip(1)
			}
			if d.r.exhausted() {
				break
			}
			d.r.skip(1)
			eols++
			if twoD {
				oneD = d.r.peek(1) == 1
				d.r.skip(1)
			}
		}
		if d.r.exhausted() {
			return res, errAt(ErrTruncated, res.Rows)
		}
		if eols >= 2 && res.Rows > 0 {
			break // RTC before the declared height: the rest is white
		}
		var err error
		if oneD || !twoD {
			err = d.line1D()
		} else {
			err = d.line2D()
		}
		if err == nil && d.r.used > len(d.r.data)*8 {
			err = ErrTruncated
		}
		if err != nil {
			if d.r.exhausted() {
				return res, errAt(ErrTruncated, res.Rows)
			}
			// T.4 Appendix I: repeat the previous line, resume at the next EOL.
			res.BadLines++
			d.cur = append(d.cur[:0], d.ref...)
			d.seekEOL()
		}
		dst.fillRow(res.Rows, d.cur)
		d.ref, d.cur = d.cur, d.ref[:0]
		res.Rows++
	}
	return res, nil
}

// seekEOL skips to just before the next EOL (eleven zeros, then a one).
func (d *decoder) seekEOL() {
	for !d.r.exhausted() && d.r.peek(eolBits) != eolCode {
		d.r.skip(1)
	}
}

// mmr decodes T.6 data: every line two-dimensional, the first against an
// imaginary white line (T.6 §2.2.1), up to the EOFB (T.6 §2.4) or the
// declared height.
func (d *decoder) mmr(dst *Bitmap) (Result, error) {
	var res Result
	for res.Rows < dst.Height {
		if d.r.peek(eolBits) == eolCode {
			break // EOFB
		}
		if d.r.exhausted() {
			return res, errAt(ErrTruncated, res.Rows)
		}
		if err := d.line2D(); err != nil {
			return res, errAt(err, res.Rows)
		}
		if d.r.used > len(d.r.data)*8 {
			return res, errAt(ErrTruncated, res.Rows)
		}
		dst.fillRow(res.Rows, d.cur)
		d.ref, d.cur = d.cur, d.ref[:0]
		res.Rows++
	}
	return res, nil
}

// rle decodes TIFF compression 2: MH lines without EOLs, each starting on
// a byte boundary (TIFF 6.0 §10).
func (d *decoder) rle(dst *Bitmap) (Result, error) {
	var res Result
	for res.Rows < dst.Height {
		if d.r.exhausted() {
			return res, errAt(ErrTruncated, res.Rows)
		}
		if err := d.line1D(); err != nil {
			return res, errAt(err, res.Rows)
		}
		dst.fillRow(res.Rows, d.cur)
		d.cur = d.cur[:0]
		d.r.alignByte()
		res.Rows++
	}
	return res, nil
}

// run reads one run length: make-up codes, then a terminating code
// (T.4 §4.1.1).
func (d *decoder) run(tab *[1 << runBits]code) (int, error) {
	total := 0
	for {
		c := tab[d.r.peek(runBits)]
		if c.n == 0 {
			return 0, ErrCorrupt
		}
		d.r.skip(uint(c.n))
		total += int(c.val)
		if c.val < 64 {
			return total, nil
		}
		if total > d.w {
			return 0, ErrCorrupt
		}
	}
}

// add appends position x to the coding line's changing elements; a change
// back at the same position cancels the one before (a run of length 0).
func (d *decoder) add(x int) {
	if n := len(d.cur); n > 0 && d.cur[n-1] == x {
		d.cur = d.cur[:n-1]
		return
	}
	d.cur = append(d.cur, x)
}

// line1D decodes one MH line: alternating white and black runs, white
// first, that add up to the width (T.4 §4.1.1).
func (d *decoder) line1D() error {
	t := tables()
	d.cur = d.cur[:0]
	a0, black := 0, false
	for a0 < d.w {
		tab := &t.white
		if black {
			tab = &t.black
		}
		n, err := d.run(tab)
		if err != nil {
			return err
		}
		a0 += n
		if a0 > d.w {
			return ErrCorrupt
		}
		d.add(a0)
		black = !black
	}
	if n := len(d.cur); n > 0 && d.cur[n-1] == d.w {
		d.cur = d.cur[:n-1] // a change at the right edge changes nothing
	}
	return nil
}

// line2D decodes one two-dimensionally coded line against d.ref
// (T.4 §4.2.1.3, T.6 §2.2.3).
func (d *decoder) line2D() error {
	t := tables()
	d.cur = d.cur[:0]
	a0, black := -1, false
	bi := 0 // where the search for b1 resumes on the reference line
	for a0 < d.w {
		b1, b2, i := d.b1b2(a0, black, bi)
		bi = i
		c := t.mode[d.r.peek(modeBits)]
		if c.n == 0 {
			return ErrCorrupt
		}
		d.r.skip(uint(c.n))
		switch m := int(c.val); m {
		case modePass: // a0 moves under b2, the colour stays
			a0 = b2
		case modeHoriz: // two runs coded 1D: a0a1 then a1a2
			first, second := &t.white, &t.black
			if black {
				first, second = second, first
			}
			r1, err := d.run(first)
			if err != nil {
				return err
			}
			r2, err := d.run(second)
			if err != nil {
				return err
			}
			a1 := max(a0, 0) + r1
			a2 := a1 + r2
			if a2 > d.w {
				return ErrCorrupt
			}
			d.add(a1)
			d.add(a2)
			a0 = a2
		case modeExt:
			return ErrCorrupt // uncompressed mode (T.4 §4.2.1.3.4) is not used by fax servers
		default: // vertical: a1 is within 3 of b1
			a1 := b1 + modeOffset[m]
			if a1 < 0 || a1 > d.w || a1 < a0 {
				return ErrCorrupt
			}
			d.add(a1)
			a0 = a1
			black = !black
		}
	}
	if n := len(d.cur); n > 0 && d.cur[n-1] == d.w {
		d.cur = d.cur[:n-1]
	}
	return nil
}

// b1b2 finds b1, the first changing element on the reference line to the
// right of a0 and of the colour opposite to a0's, and b2, the next one
// (T.4 §4.2.1.3.1); both are the line width where there is none. from is
// where the last search ended: a0 never moves back more than 3 pixels, so
// the search restarts two elements before it. It returns where this one
// ended.
func (d *decoder) b1b2(a0 int, black bool, from int) (b1, b2, at int) {
	i := max(from-2, 0)
	// ref[i] for even i is a change to black; b1 changes to a0's opposite.
	want := 0
	if black {
		want = 1
	}
	for i < len(d.ref) && (d.ref[i] <= a0 || i%2 != want) {
		i++
	}
	b1, b2 = d.w, d.w
	if i < len(d.ref) {
		b1 = d.ref[i]
	}
	if i+1 < len(d.ref) {
		b2 = d.ref[i+1]
	}
	return b1, b2, i
}
