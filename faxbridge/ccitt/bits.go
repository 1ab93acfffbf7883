package ccitt

// bitReader reads a code stream most significant bit first. Past the end
// of data it reads zeros; exhausted says when that has begun, so a loop
// that skips zeros always ends.
type bitReader struct {
	data []byte
	pos  int    // next byte of data to load into acc
	acc  uint64 // unread bits, left-aligned
	n    uint   // how many bits of acc are valid
	used int    // bits consumed so far
}

func (r *bitReader) fill() {
	for r.n <= 56 {
		var b byte
		if r.pos < len(r.data) {
			b = r.data[r.pos]
		}
		r.pos++
		r.acc |= uint64(b) << (56 - r.n)
		r.n += 8
	}
}

// peek returns the next k (≤ 32) bits without consuming them.
func (r *bitReader) peek(k uint) uint32 {
	if r.n < k {
		r.fill()
	}
	return uint32(r.acc >> (64 - k))
}

func (r *bitReader) skip(k uint) {
	if r.n < k {
		r.fill()
	}
	r.acc <<= k
	r.n -= k
	r.used += int(k)
}

// exhausted reports whether every bit of data has been consumed.
func (r *bitReader) exhausted() bool { return r.used >= len(r.data)*8 }

// alignByte skips to the next byte boundary of data.
func (r *bitReader) alignByte() {
	if k := r.used % 8; k != 0 {
		r.skip(uint(8 - k))
	}
}

// bitWriter collects codes most significant bit first.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v word) {
	w.acc = w.acc<<v.n | uint64(v.bits)
	w.n += uint(v.n)
	for w.n >= 8 {
		w.n -= 8
		w.out = append(w.out, byte(w.acc>>w.n))
	}
}

// flush pads the last byte with zero bits.
func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.n)))
		w.n = 0
	}
	return w.out
}
