package relay

import (
	"bufio"
	"io"
	"sync"
)

// pipedBodyBuf is the read-ahead between a Sealer or Opener goroutine and
// the delivery reading its output. Each delivery used to allocate its own
// 64 KiB (and io.Copy its own 32 KiB); at hundreds of messages a second
// that allocation was most of the relay's garbage, and its collection a
// tenth of its CPU time. They now come from pools on the Relay.
const pipedBodyBuf = 64 << 10

// bufs holds the Relay's reusable delivery buffers.
type bufs struct {
	readers sync.Pool // *bufio.Reader of pipedBodyBuf bytes
	copies  sync.Pool // *[]byte of 32 KiB, for copying a body to DATA
}

func newBufs() *bufs {
	b := &bufs{}
	b.readers.New = func() any { return bufio.NewReaderSize(nil, pipedBodyBuf) }
	b.copies.New = func() any { p := make([]byte, 32<<10); return &p }
	return b
}

// pipedBody reads a pipe through a pooled bufio.Reader; Close closes the
// pipe (stopping its writer) and gives the reader back.
type pipedBody struct {
	br   *bufio.Reader
	pr   *io.PipeReader
	pool *sync.Pool
}

func (b *bufs) piped(pr *io.PipeReader) *pipedBody {
	br := b.readers.Get().(*bufio.Reader)
	br.Reset(pr)
	return &pipedBody{br: br, pr: pr, pool: &b.readers}
}

func (p *pipedBody) Read(q []byte) (int, error) {
	if p.br == nil {
		return 0, io.ErrClosedPipe
	}
	return p.br.Read(q)
}

func (p *pipedBody) Peek(n int) ([]byte, error) { return p.br.Peek(n) }

func (p *pipedBody) Close() error {
	err := p.pr.Close()
	if p.br != nil {
		p.br.Reset(nil)
		p.pool.Put(p.br)
		p.br = nil
	}
	return err
}

// copyBody is io.Copy with a pooled buffer.
func (b *bufs) copyBody(w io.Writer, r io.Reader) (int64, error) {
	bp := b.copies.Get().(*[]byte)
	defer b.copies.Put(bp)
	return io.CopyBuffer(w, r, *bp)
}
