package ccitt

// EncodeG4 codes b as ITU-T T.6 (MMR), ending with the EOFB (T.6 §2.4),
// for TIFF compression 4 or PDF's CCITTFaxDecode with K = -1.
func EncodeG4(b *Bitmap) []byte {
	t := tables()
	e := encoder{t: t, w: b.Width}
	e.out.out = make([]byte, 0, b.Width*b.Height/64+16)
	var ref, cur []int
	for y := 0; y < b.Height; y++ {
		cur = b.rowChanges(cur[:0], y)
		e.line(ref, cur)
		ref, cur = cur, ref
	}
	eol := word{bits: eolCode, n: eolBits}
	e.out.write(eol)
	e.out.write(eol)
	return e.out.flush()
}

type encoder struct {
	t   *codeTables
	w   int
	out bitWriter
}

// at returns the first changing element of line at index ≥ i that is right
// of a0 and, if parity ≥ 0, has index parity (even: a change to black).
func (e *encoder) at(line []int, i, a0, parity int) (int, int) {
	for i < len(line) && (line[i] <= a0 || parity >= 0 && i%2 != parity) {
		i++
	}
	if i < len(line) {
		return line[i], i
	}
	return e.w, i
}

// line codes one line against the reference line ref (T.6 §2.2, the
// flow chart of T.4 Figure 7).
func (e *encoder) line(ref, cur []int) {
	a0, black := -1, false
	ci, ri := 0, 0 // where the searches for a1 and b1 resume
	for a0 < e.w {
		parity := 0
		if black {
			parity = 1
		}
		a1, ai := e.at(cur, ci, a0, parity)
		b1, bi := e.at(ref, max(ri-2, 0), a0, parity)
		ci, ri = ai, bi
		b2 := e.w
		if bi+1 < len(ref) {
			b2 = ref[bi+1]
		}
		switch {
		case b2 < a1: // pass mode
			e.mode(modePass)
			a0 = b2
		case a1-b1 >= -3 && a1-b1 <= 3: // vertical mode
			e.mode(verticalMode[a1-b1+3])
			a0 = a1
			black = !black
		default: // horizontal mode
			a2 := e.w
			if ai+1 < len(cur) {
				a2 = cur[ai+1]
			}
			e.mode(modeHoriz)
			c := 0
			if black {
				c = 1
			}
			e.run(c, a1-max(a0, 0))
			e.run(1-c, a2-a1)
			a0 = a2
		}
	}
}

// verticalMode is the mode for a1 − b1 = -3..3.
var verticalMode = [7]int{modeVL3, modeVL2, modeVL1, modeV0, modeVR1, modeVR2, modeVR3}

func (e *encoder) mode(m int) { e.out.write(e.t.modeWord[m]) }

// run writes a run length: extended make-up codes while it exceeds 2560,
// a make-up code for its multiple of 64, then the terminating code
// (T.4 §4.1.1).
func (e *encoder) run(colour, n int) {
	for n > maxRun {
		e.out.write(e.t.makeup[colour][len(e.t.makeup[colour])-1])
		n -= maxRun
	}
	if n >= 64 {
		e.out.write(e.t.makeup[colour][n/64-1])
		n %= 64
	}
	e.out.write(e.t.term[colour][n])
}
