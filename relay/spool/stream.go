package spool

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// File format, version 1:
//
//	header  "NRSP" | version (1 byte) | key ID (8) | nonce prefix (19)    32 bytes
//	chunk*  XChaCha20-Poly1305 ciphertext of up to chunkSize bytes + 16-byte tag
//
// Chunk i's nonce is prefix | uint32 big-endian i | last, where last is 1
// for the final chunk and 0 for the others; its associated data is the
// header followed by the message ID. Every chunk but the last holds exactly
// chunkSize bytes; the last holds 0 to chunkSize. The key ID (HMAC-SHA256
// of a fixed label under the key, first 8 bytes) tells "sealed with another
// key" apart from tampering.
//
// This is STREAM from V. T. Hoang, R. Reyhanitabar, P. Rogaway, D. Vizár,
// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// CRYPTO 2015 (IACR ePrint 2015/189): segment i of a stream is sealed under
// the nonce N ‖ i ‖ a, with a = 1 only for the final segment, which makes
// the stream nOAE-secure. So a chunk moved to another position, a dropped
// or repeated chunk, a dropped final chunk (a truncated file) all fail to
// open; binding the header and the ID as associated data extends that to a
// chunk moved to another file or a file renamed to another ID.
//
// The AEAD is AEAD_XChaCha20_Poly1305 (draft-irtf-cfrg-xchacha-03): the
// ChaCha20-Poly1305 AEAD of RFC 8439 §2.8 with XChaCha20, whose 192-bit
// nonce (HChaCha20 derives a subkey from the key and its first 128 bits)
// is long enough to be drawn at random. RFC 8439 §4 requires a nonce never
// to repeat under one key; here the 152-bit random prefix is fresh per
// file, and the counter and flag make each chunk's nonce distinct within
// it; two files drawing the same prefix becomes likely only after about
// 2^76 files under one key (the birthday bound).
const (
	magic       = "NRSP"
	version1    = 1
	keyIDSize   = 8
	prefixSize  = chacha20poly1305.NonceSizeX - 5 // STREAM's N: 24-byte nonce less 4-byte counter i, 1-byte flag a
	headerSize  = len(magic) + 1 + keyIDSize + prefixSize
	chunkSize   = 64 << 10
	tagSize     = chacha20poly1305.Overhead
	sealedChunk = chunkSize + tagSize
)

// ErrWrongKey means a spool file was sealed under a different key than the
// spool's: the key file was replaced, or the file came from another spool.
var ErrWrongKey = errors.New("spool: message was encrypted with a different key")

func keyID(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("nhsrelay spool key id v1"))
	return m.Sum(nil)[:keyIDSize]
}

func newHeader(kid []byte) ([]byte, error) {
	h := make([]byte, headerSize)
	copy(h, magic)
	h[len(magic)] = version1
	copy(h[len(magic)+1:], kid)
	if _, err := rand.Read(h[len(magic)+1+keyIDSize:]); err != nil {
		return nil, fmt.Errorf("spool: random nonce: %w", err)
	}
	return h, nil
}

// chunkNonce sets nonce to prefix | counter | last: STREAM's N ‖ i ‖ a.
func chunkNonce(nonce *[chacha20poly1305.NonceSizeX]byte, header []byte, counter uint32, last bool) {
	copy(nonce[:prefixSize], header[headerSize-prefixSize:])
	binary.BigEndian.PutUint32(nonce[prefixSize:], counter)
	nonce[prefixSize+4] = 0
	if last {
		nonce[prefixSize+4] = 1
	}
}

// seal reads r to EOF and writes header and sealed chunks to w, using buf
// (capacity ≥ sealedChunk) as its only buffer. It returns the plaintext
// byte count.
func seal(w io.Writer, r io.Reader, aead cipher.AEAD, header, ad, buf []byte) (int64, error) {
	if _, err := w.Write(header); err != nil {
		return 0, err
	}
	var (
		total   int64
		counter uint32
		nonce   [chacha20poly1305.NonceSizeX]byte
		n       int
	)
	flush := func(last bool) error {
		chunkNonce(&nonce, header, counter, last)
		out := aead.Seal(buf[:0], nonce[:], buf[:n], ad) // in place: exact overlap is allowed
		if _, err := w.Write(out); err != nil {
			return err
		}
		if counter == math.MaxUint32 && !last {
			return errors.New("spool: message too large")
		}
		counter++
		n = 0
		return nil
	}
	for {
		if n == chunkSize {
			if err := flush(false); err != nil {
				return total, err
			}
		}
		m, err := r.Read(buf[n:chunkSize])
		n += m
		total += int64(m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return total, fmt.Errorf("read body: %w", err)
		}
	}
	// The final chunk may be empty (an empty message, or one that ended on
	// a chunk boundary); it still carries a tag with the last flag set.
	return total, flush(true)
}

// opener decrypts a sealed stream chunk by chunk.
type opener struct {
	r       *bufio.Reader
	c       io.Closer
	aead    cipher.AEAD
	header  []byte
	ad      []byte
	buf     []byte
	plain   []byte
	counter uint32
	done    bool
	err     error
	pool    *sync.Pool // where buf came from (a *[]byte), nil if allocated
	bp      *[]byte
}

// newOpener reads and checks the header from r. Header problems are errors
// wrapping ErrCorrupt, or ErrWrongKey.
func newOpener(r io.Reader, c io.Closer, aead cipher.AEAD, kid []byte, id string) (*opener, error) {
	br := bufio.NewReader(r)
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(br, header); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: header truncated", ErrCorrupt)
		}
		return nil, err
	}
	if string(header[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a spool file", ErrCorrupt)
	}
	if v := header[len(magic)]; v != version1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, v)
	}
	if !hmac.Equal(header[len(magic)+1:len(magic)+1+keyIDSize], kid) {
		return nil, ErrWrongKey
	}
	ad := append(bytes.Clone(header), id...)
	return &opener{r: br, c: c, aead: aead, header: header, ad: ad}, nil
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.done {
			return 0, io.EOF
		}
		o.err = o.next()
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// next reads and opens one chunk. A chunk is the last one when the file
// ends with it; the last flag in its nonce makes that claim authenticated.
func (o *opener) next() error {
	if o.buf == nil {
		o.buf = make([]byte, sealedChunk)
	}
	n, err := io.ReadFull(o.r, o.buf)
	last := false
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		return fmt.Errorf("spool: read: %w", err)
	default:
		if _, err := o.r.Peek(1); errors.Is(err, io.EOF) {
			last = true
		} else if err != nil {
			return fmt.Errorf("spool: read: %w", err)
		}
	}
	if n < tagSize {
		return fmt.Errorf("%w: truncated at chunk %d", ErrCorrupt, o.counter)
	}
	var nonce [chacha20poly1305.NonceSizeX]byte
	chunkNonce(&nonce, o.header, o.counter, last)
	plain, err := o.aead.Open(o.buf[:0], nonce[:], o.buf[:n], o.ad)
	if err != nil {
		return fmt.Errorf("%w: chunk %d fails authentication", ErrCorrupt, o.counter)
	}
	if o.counter == math.MaxUint32 && !last {
		return fmt.Errorf("%w: too many chunks", ErrCorrupt)
	}
	o.counter++
	o.plain = plain
	o.done = last
	return nil
}

// usePool makes the opener read chunks into a buffer from pool (a
// *[]byte of sealedChunk bytes) and give it back on Close.
func (o *opener) usePool(pool *sync.Pool) {
	o.pool = pool
	o.bp = pool.Get().(*[]byte)
	o.buf = *o.bp
}

// errClosed is what Read returns after Close.
var errClosed = errors.New("spool: read of a closed body")

func (o *opener) Close() error {
	if o.bp != nil {
		o.plain, o.buf = nil, nil // they point into the buffer given back
		o.pool.Put(o.bp)
		o.bp = nil
		o.err = errClosed
	}
	return o.c.Close()
}
