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
}

func (h header) is(class, tag int) bool { return h.class == class && h.tag == tag }

// berReader reads BER from a stream, counting bytes so callers can bound
// definite-length elements.
type berReader struct {
	r *bufio.Reader
}

func newBERReader(r io.Reader) *berReader { return &berReader{r: bufio.NewReaderSize(r, 64<<10)} }

func (b *berReader) readHeader() (header, error) {
	var h header
	c, err := b.r.ReadByte()
	if err != nil {
		return h, err
	}
	h.class = int(c >> 6)
	h.constructed = c&0x20 != 0
	h.tag = int(c & 0x1f)
	if h.tag == 0x1f { // high tag number form, X.690 §8.1.2.4
		h.tag = 0
		for i := 0; ; i++ {
			c, err = b.r.ReadByte()
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
	c, err = b.r.ReadByte()
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
			c, err = b.r.ReadByte()
			if err != nil {
				return h, unexpected(err)
			}
			h.length = h.length<<8 | int64(c)
		}
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

// readNode reads one complete element, which must be at most maxNodeSize.
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

func (b *berReader) readBody(h header, budget *int64, depth int) (*node, error) {
	if depth > maxNodeDepth {
		return nil, fmt.Errorf("%w: nested too deep", errBER)
	}
	n := &node{header: h}
	if !h.constructed {
		if h.length > *budget {
			return nil, fmt.Errorf("%w: element too large", errBER)
		}
		*budget -= h.length
		n.content = make([]byte, h.length)
		if _, err := io.ReadFull(b.r, n.content); err != nil {
			return nil, unexpected(err)
		}
		return n, nil
	}
	if h.indefinite {
		for {
			ch, err := b.readHeader()
			if err != nil {
				return nil, unexpected(err)
			}
			if ch.isEOC() {
				return n, nil
			}
			c, err := b.readBody(ch, budget, depth+1)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
	}
	if h.length > *budget {
		return nil, fmt.Errorf("%w: element too large", errBER)
	}
	sub := &berReader{r: bufio.NewReader(io.LimitReader(b.r, h.length))}
	for {
		ch, err := sub.readHeader()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return nil, unexpected(err)
		}
		c, err := sub.readBody(ch, budget, depth+1)
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
	if _, err := b.r.ReadByte(); err != io.EOF {
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

func newOctetStream(b *berReader, h header) *octetStream {
	s := &octetStream{}
	switch {
	case !h.constructed:
		s.seg, s.left = b, h.length
	case h.indefinite:
		s.stack = []frame{{b: b, indefinite: true}}
	default:
		s.stack = []frame{{b: newBERReader(io.LimitReader(b.r, h.length))}}
	}
	return s
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
			s.stack = append(s.stack, frame{b: newBERReader(io.LimitReader(top.b.r, h.length))})
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.seg.r.Read(p)
	s.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
