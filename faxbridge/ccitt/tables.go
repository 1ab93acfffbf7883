package ccitt

import "sync"

// The code tables of ITU-T T.4 §4.1.2: terminating codes (Table 2, runs
// 0–63), make-up codes (Table 3a, multiples of 64 to 1728) and the
// extended make-up codes shared by both colours (Table 3b, 1792–2560).
// Index i of a terminating table is run i; of a make-up table, run
// 64×(i+1). T.6 §2.2.4 uses the same codes.
var whiteTerm = [64]string{
	"00110101", "000111", "0111", "1000", "1011", "1100", "1110", "1111",
	"10011", "10100", "00111", "01000", "001000", "000011", "110100", "110101",
	"101010", "101011", "0100111", "0001100", "0001000", "0010111", "0000011", "0000100",
	"0101000", "0101011", "0010011", "0100100", "0011000", "00000010", "00000011", "00011010",
	"00011011", "00010010", "00010011", "00010100", "00010101", "00010110", "00010111", "00101000",
	"00101001", "00101010", "00101011", "00101100", "00101101", "00000100", "00000101", "00001010",
	"00001011", "01010010", "01010011", "01010100", "01010101", "00100100", "00100101", "01011000",
	"01011001", "01011010", "01011011", "01001010", "01001011", "00110010", "00110011", "00110100",
}

var blackTerm = [64]string{
	"0000110111", "010", "11", "10", "011", "0011", "0010", "00011",
	"000101", "000100", "0000100", "0000101", "0000111", "00000100", "00000111", "000011000",
	"0000010111", "0000011000", "0000001000", "00001100111", "00001101000", "00001101100", "00000110111", "00000101000",
	"00000010111", "00000011000", "000011001010", "000011001011", "000011001100", "000011001101", "000001101000", "000001101001",
	"000001101010", "000001101011", "000011010010", "000011010011", "000011010100", "000011010101", "000011010110", "000011010111",
	"000001101100", "000001101101", "000011011010", "000011011011", "000001010100", "000001010101", "000001010110", "000001010111",
	"000001100100", "000001100101", "000001010010", "000001010011", "000000100100", "000000110111", "000000111000", "000000100111",
	"000000101000", "000001011000", "000001011001", "000000101011", "000000101100", "000001011010", "000001100110", "000001100111",
}

var whiteMakeup = [27]string{
	"11011", "10010", "010111", "0110111", "00110110", "00110111", "01100100", "01100101",
	"01101000", "01100111", "011001100", "011001101", "011010010", "011010011", "011010100", "011010101",
	"011010110", "011010111", "011011000", "011011001", "011011010", "011011011", "010011000", "010011001",
	"010011010", "011000", "010011011",
}

var blackMakeup = [27]string{
	"0000001111", "000011001000", "000011001001", "000001011011", "000000110011", "000000110100", "000000110101", "0000001101100",
	"0000001101101", "0000001001010", "0000001001011", "0000001001100", "0000001001101", "0000001110010", "0000001110011", "0000001110100",
	"0000001110101", "0000001110110", "0000001110111", "0000001010010", "0000001010011", "0000001010100", "0000001010101", "0000001011010",
	"0000001011011", "0000001100100", "0000001100101",
}

// extMakeup: runs 1792, 1856, ..., 2560 (T.4 Table 3b).
var extMakeup = [13]string{
	"00000001000", "00000001100", "00000001101", "000000010010", "000000010011", "000000010100", "000000010101",
	"000000010110", "000000010111", "000000011100", "000000011101", "000000011110", "000000011111",
}

// Two-dimensional mode codes, T.4 §4.2.1.3.2 Table 4 (T.6 Table 1).
const (
	modePass = iota
	modeHoriz
	modeV0
	modeVR1
	modeVR2
	modeVR3
	modeVL1
	modeVL2
	modeVL3
	modeExt // 0000001xxx: extensions such as uncompressed mode
	nModes
)

var modeCodes = [nModes]string{
	modePass: "0001", modeHoriz: "001", modeV0: "1",
	modeVR1: "011", modeVR2: "000011", modeVR3: "0000011",
	modeVL1: "010", modeVL2: "000010", modeVL3: "0000010",
	modeExt: "0000001",
}

// modeOffset is a1 − b1 for each vertical mode (T.4 §4.2.1.3.2 b).
var modeOffset = [nModes]int{modeV0: 0, modeVR1: 1, modeVR2: 2, modeVR3: 3, modeVL1: -1, modeVL2: -2, modeVL3: -3}

const (
	runBits  = 13 // the longest run code (black make-up) is 13 bits
	modeBits = 7
	eolCode  = 1  // EOL is 000000000001 (T.4 §4.1.2)
	eolBits  = 12 // ...twelve bits long
	maxRun   = 2560
)

// A code is a decoded table entry: the value (run length or mode) and the
// code's length in bits; n == 0 marks a bit pattern no code starts with.
type code struct {
	val int16
	n   uint8
}

// A word is an encoder's table entry: the code's bits, right-aligned.
type word struct {
	bits uint32
	n    uint8
}

type codeTables struct {
	white, black [1 << runBits]code
	mode         [1 << modeBits]code
	// Encoder side: term[colour][run] and makeup[colour][run/64-1] for
	// runs 64..2560 (extended codes at the end of both).
	term     [2][64]word
	makeup   [2][40]word
	modeWord [nModes]word
}

// tables builds the lookup tables once, on first use, from the strings
// above (read-only afterwards).
var tables = sync.OnceValue(func() *codeTables {
	t := new(codeTables)
	for colour, term := range [2]*[64]string{&whiteTerm, &blackTerm} {
		dec := &t.white
		if colour == 1 {
			dec = &t.black
		}
		for run, s := range term {
			put(dec[:], runBits, s, run)
			t.term[colour][run] = toWord(s)
		}
		mk := &whiteMakeup
		if colour == 1 {
			mk = &blackMakeup
		}
		for i, s := range mk {
			put(dec[:], runBits, s, 64*(i+1))
			t.makeup[colour][i] = toWord(s)
		}
		for i, s := range extMakeup {
			put(dec[:], runBits, s, 1792+64*i)
			t.makeup[colour][27+i] = toWord(s)
		}
	}
	for m, s := range modeCodes {
		put(t.mode[:], modeBits, s, m)
		t.modeWord[m] = toWord(s)
	}
	return t
})

// put fills every index of tab (indexed by the next width bits) that
// starts with the code s.
func put(tab []code, width int, s string, val int) {
	w := toWord(s)
	shift := width - int(w.n)
	first := int(w.bits) << shift
	for i := range 1 << shift {
		tab[first|i] = code{val: int16(val), n: w.n}
	}
}

func toWord(s string) word {
	var w word
	for _, c := range s {
		w.bits = w.bits<<1 | uint32(c-'0')
		w.n++
	}
	return w
}
