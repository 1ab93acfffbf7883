package smime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// A streaming reader for the BER that CMS uses (RFC 5652 §1.2: BER for
// content, with indefinite lengths, X.690 §8.1.3.6). Small elements are
// read whole into a node tree and re-encoded as DER for encoding/asn1;
// the encrypted content is streamed octet string by octet string.

var errBER = errors.New("smime: malformed BER")

const (
	classUniversal = 0
	classContext   = 2

	tagInteger     = 2
	tagOctetString = 4
	tagOID         = 6
	tagSequence    = 16
	tagSet         = 17

	maxNodeSize  = 4 << 20 // certificates, recipient infos, signatures: never this big
	maxNodeDepth = 32
)

// header is one BER identifier and length.
type header struct {
	class       int
	tag         int
	constructed bool
	indefinite  bool
	length      int64
	hlen        int64 // bytes of identifier and length octets
}

func (h header) is(class, tag int) bool { return h.class == class && h.tag == tag }

// berReader reads BER from a stream. Readers for the inside of a
// definite-length element share the stream and its position and differ
// only in where they end, so nesting allocates nothing.
type berReader struct {
	r   *bufio.Reader
	pos *int64 // bytes consumed from r, shared with sub-readers
	end int64  // position where this reader's element ends; -1: the stream's end
}

func newBERReader(r io.Reader) *berReader {
	return &berReader{r: bufio.NewReaderSize(r, 64<<10), pos: new(int64), end: -1}
}

// sub returns a reader for the length bytes that follow, which must lie
// within b's own element.
func (b *berReader) sub(length int64) (*berReader, error) {
	end := *b.pos + length
	if length < 0 || end < *b.pos || (b.end >= 0 && end > b.end) {
		return nil, fmt.Errorf("%w: element overruns its parent", errBER)
	}
	return &berReader{r: b.r, pos: b.pos, end: end}, nil
}

// remaining is how many bytes are left in b's element (-1: unknown).
func (b *berReader) remaining() int64 {
	if b.end < 0 {
		return -1
	}
	return b.end - *b.pos
}

func (b *berReader) readByte() (byte, error) {
	if b.end >= 0 && *b.pos >= b.end {
		return 0, io.EOF
	}
	c, err := b.r.ReadByte()
	if err == nil {
		*b.pos++
	} else if err == io.EOF && b.end >= 0 {
		err = io.ErrUnexpectedEOF // the stream ended inside an element
	}
	return c, err
}

func (b *berReader) Read(p []byte) (int, error) {
	if left := b.remaining(); left >= 0 {
		if left == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := b.r.Read(p)
	*b.pos += int64(n)
	if err == io.EOF && b.end >= 0 {
		err = io.ErrUnexpectedEOF // the stream ended inside an element
	}
	return n, err
}

// enter returns a reader for the contents of the constructed element whose
// header h was just read from b: b itself if its length is indefinite.
func (b *berReader) enter(h header) (*berReader, error) {
	if !h.constructed {
		return nil, fmt.Errorf("%w: primitive where constructed expected", errBER)
	}
	if h.indefinite {
		return b, nil
	}
	return b.sub(h.length)
}

// next reads the next element inside the element r was entered for with
// h, whole and charged to budget; nil, nil at its end.
func (r *berReader) next(h header, budget *int64) (*node, error) {
	ch, err := r.readHeader()
	switch {
	case err == io.EOF && !h.indefinite:
		return nil, nil
	case err != nil:
		return nil, unexpected(err)
	case h.indefinite && ch.isEOC():
		return nil, nil
	}
	return r.readBody(ch, budget, 1)
}

// leave checks that the element r was entered for with h has nothing
// left, reading its end-of-contents if its length is indefinite.
func (r *berReader) leave(h header) error {
	if !h.indefinite {
		if r.remaining() != 0 {
			return fmt.Errorf("%w: unexpected data in an element", errBER)
		}
		return nil
	}
	ch, err := r.readHeader()
	if err != nil {
		return unexpected(err)
	}
	if !ch.isEOC() {
		return fmt.Errorf("%w: unexpected data in an element", errBER)
	}
	return nil
}

func (b *berReader) readHeader() (header, error) {
	var h header
	start := *b.pos
	c, err := b.readByte()
	if err != nil {
		return h, err
	}
	h.class = int(c >> 6)
	h.constructed = c&0x20 != 0
	h.tag = int(c & 0x1f)
	if h.tag == 0x1f { // high tag number form, X.690 §8.1.2.4
		h.tag = 0
		for i := 0; ; i++ {
			c, err = b.readByte()
			if err != nil {
				return h, unexpected(err)
			}
			if i > 3 {
				return h, fmt.Errorf("%w: tag too long", errBER)
			}
			h.tag = h.tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	c, err = b.readByte()
	if err != nil {
		return h, unexpected(err)
	}
	switch {
	case c < 0x80:
		h.length = int64(c)
	case c == 0x80:
		if !h.constructed {
			return h, fmt.Errorf("%w: indefinite length on a primitive", errBER)
		}
		h.indefinite = true
	default:
		n := int(c & 0x7f)
		if n > 7 {
			return h, fmt.Errorf("%w: length too long", errBER)
		}
		for range n {
			c, err = b.readByte()
			if err != nil {
				return h, unexpected(err)
			}
			h.length = h.length<<8 | int64(c)
		}
	}
	h.hlen = *b.pos - start
	if !h.indefinite && b.end >= 0 && h.length > b.end-*b.pos {
		return h, fmt.Errorf("%w: element overruns its parent", errBER)
	}
	return h, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isEOC reports whether h is an end-of-contents marker (00 00).
func (h header) isEOC() bool { return h.class == 0 && h.tag == 0 && !h.constructed && h.length == 0 }

// node is an element read whole.
type node struct {
	header
	content  []byte // primitive content
	children []*node
}

// Limits on an element read whole. Every element is charged its header,
// its primitive content and nodeCost (what a node and its place in its
// parent's list take in memory, rounded up), so a flood of empty or tiny
// elements exhausts the budget as surely as one large one: the heap a
// node tree takes is at most a small multiple of maxNodeSize.
const (
	nodeCost    = 128  // measured: a node and its slot in its parent take about 120 bytes
	maxChildren = 4096 // recipients, certificates, attributes: never this many
)

// readNode reads one complete element, which must cost at most maxNodeSize.
func (b *berReader) readNode() (*node, error) {
	budget := int64(maxNodeSize)
	return b.readNodeBudget(&budget, 0)
}

func (b *berReader) readNodeBudget(budget *int64, depth int) (*node, error) {
	h, err := b.readHeader()
	if err != nil {
		return nil, err
	}
	return b.readBody(h, budget, depth)
}

func charge(budget *int64, n int64) error {
	if n > *budget {
		return fmt.Errorf("%w: element too large", errBER)
	}
	*budget -= n
	return nil
}

func (b *berReader) readBody(h header, budget *int64, depth int) (*node, error) {
	if depth > maxNodeDepth {
		return nil, fmt.Errorf("%w: nested too deep", errBER)
	}
	if err := charge(budget, h.hlen+nodeCost); err != nil {
		return nil, err
	}
	n := &node{header: h}
	if !h.constructed {
		if err := charge(budget, h.length); err != nil {
			return nil, err
		}
		n.content = make([]byte, h.length)
		if _, err := io.ReadFull(b, n.content); err != nil {
			return nil, unexpected(err)
		}
		return n, nil
	}
	r := b
	if !h.indefinite {
		if h.length > *budget {
			return nil, fmt.Errorf("%w: element too large", errBER)
		}
		var err error
		if r, err = b.sub(h.length); err != nil {
			return nil, err
		}
	}
	for {
		ch, err := r.readHeader()
		switch {
		case err == io.EOF && !h.indefinite:
			return n, nil
		case err != nil:
			return nil, unexpected(err)
		case h.indefinite && ch.isEOC():
			return n, charge(budget, ch.hlen)
		case len(n.children) >= maxChildren:
			return nil, fmt.Errorf("%w: too many elements in one", errBER)
		}
		c, err := r.readBody(ch, budget, depth+1)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
}

// parseNode reads one element from data, which must hold exactly one.
func parseNode(data []byte) (*node, error) {
	b := newBERReader(bytes.NewReader(data))
	n, err := b.readNode()
	if err != nil {
		return nil, unexpected(err)
	}
	if _, err := b.readByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data", errBER)
	}
	return n, nil
}

// der re-encodes n with definite lengths; a constructed OCTET STRING (or
// [n] IMPLICIT one, as CMS content) is flattened to a primitive, as DER
// requires (X.690 §10.2).
func (n *node) der() []byte {
	var out bytes.Buffer
	n.writeDER(&out)
	return out.Bytes()
}

func (n *node) writeDER(out *bytes.Buffer) {
	if n.constructed && n.tag == tagOctetString && n.class == classUniversal {
		writeTL(out, n.class, n.tag, false, len(n.octets()))
		out.Write(n.octets())
		return
	}
	if !n.constructed {
		writeTL(out, n.class, n.tag, false, len(n.content))
		out.Write(n.content)
		return
	}
	var body bytes.Buffer
	for _, c := range n.children {
		c.writeDER(&body)
	}
	writeTL(out, n.class, n.tag, true, body.Len())
	out.Write(body.Bytes())
}

// octets returns the content of an OCTET STRING, primitive or constructed.
func (n *node) octets() []byte {
	if !n.constructed {
		return n.content
	}
	var out []byte
	for _, c := range n.children {
		out = append(out, c.octets()...)
	}
	return out
}

func writeTL(out *bytes.Buffer, class, tag int, constructed bool, length int) {
	id := byte(class << 6)
	if constructed {
		id |= 0x20
	}
	if tag < 31 {
		out.WriteByte(id | byte(tag))
	} else {
		out.WriteByte(id | 0x1f)
		var t []byte
		for v := tag; v > 0; v >>= 7 {
			t = append([]byte{byte(v & 0x7f)}, t...)
		}
		for i := 0; i < len(t)-1; i++ {
			t[i] |= 0x80
		}
		out.Write(t)
	}
	writeLength(out, length)
}

func writeLength(out *bytes.Buffer, length int) {
	if length < 0x80 {
		out.WriteByte(byte(length))
		return
	}
	var l []byte
	for v := length; v > 0; v >>= 8 {
		l = append([]byte{byte(v)}, l...)
	}
	out.WriteByte(0x80 | byte(len(l)))
	out.Write(l)
}

// octetStream reads the content octets of an OCTET STRING whose header has
// been read: a primitive of known length, or a constructed string of
// primitive (or nested constructed) segments. It is how the encrypted
// content is streamed without holding it.
type octetStream struct {
	stack []frame // open constructed strings, innermost last
	seg   *berReader
	left  int64 // bytes left in the current primitive segment
}

type frame struct {
	b          *berReader
	indefinite bool
}

func newOctetStream(b *berReader, h header) (*octetStream, error) {
	s := &octetStream{}
	switch {
	case !h.constructed:
		s.seg, s.left = b, h.length
	case h.indefinite:
		s.stack = []frame{{b: b, indefinite: true}}
	default:
		sb, err := b.sub(h.length)
		if err != nil {
			return nil, err
		}
		s.stack = []frame{{b: sb}}
	}
	return s, nil
}

func (s *octetStream) Read(p []byte) (int, error) {
	for s.left == 0 {
		if len(s.stack) == 0 {
			return 0, io.EOF
		}
		top := s.stack[len(s.stack)-1]
		h, err := top.b.readHeader()
		switch {
		case err == io.EOF && !top.indefinite:
			s.stack = s.stack[:len(s.stack)-1]
			continue
		case err != nil:
			return 0, unexpected(err)
		case h.isEOC() && top.indefinite:
			s.stack = s.stack[:len(s.stack)-1]
			continue
		case h.class != classUniversal || h.tag != tagOctetString:
			return 0, fmt.Errorf("%w: unexpected element in octet string", errBER)
		}
		if len(s.stack) > maxNodeDepth {
			return 0, fmt.Errorf("%w: nested too deep", errBER)
		}
		switch {
		case !h.constructed:
			s.seg, s.left = top.b, h.length
		case h.indefinite:
			s.stack = append(s.stack, frame{b: top.b, indefinite: true})
		default:
			sb, err := top.b.sub(h.length)
			if err != nil {
				return 0, err
			}
			s.stack = append(s.stack, frame{b: sb})
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.seg.Read(p)
	s.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
