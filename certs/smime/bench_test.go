package smime_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"nhsrelay/certs/smime"
)

// message builds a size-byte clinical message: headers and a base64 PDF
// attachment in 76-character lines, as a GP system would send.
func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString(crlf(sample[:len(sample)-len("Hb 131 g/L. Please review.\n")]))
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := make([]byte, 78)
	line[76], line[77] = '\r', '\n'
	for b.Len() < size {
		for i := range 76 {
			line[i] = alphabet[r.IntN(64)]
		}
		b.Write(line)
	}
	return b.Bytes()[:size]
}

// BenchmarkSealVsOpenSSL compares Seal's sign+encrypt throughput with
// `openssl cms -sign | openssl cms -encrypt -aes256 -keyopt
// rsa_padding_mode:oaep` on the same message, in the same run, and reports
// both rates and their ratio (target ≥ 1.0).
func BenchmarkSealVsOpenSSL(b *testing.B) {
	w := newWorld(b)
	for _, size := range []int{1 << 20, 10 << 20} {
		b.Run(fmt.Sprintf("%dMB", size>>20), func(b *testing.B) {
			msg := message(size)
			msgFile := filepath.Join(w.dir, fmt.Sprintf("bench-%d.eml", size))
			if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
				b.Fatal(err)
			}
			recipients := []*x509.Certificate{w.recipient.kp.Cert}
			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := smime.Seal(io.Discard, bytes.NewReader(msg), w.sender.signer(), recipients, smime.OuterHeader{}); err != nil {
					b.Fatal(err)
				}
			}
			sealRate := float64(size) * float64(b.N) / time.Since(start).Seconds() / 1e6
			b.StopTimer()
			runs := min(b.N, 5)
			start = time.Now()
			for range runs {
				opensslPipeline(b, msgFile, w.sender.certFile, w.sender.keyFile, w.recipient.certFile)
			}
			osslRate := float64(size) * float64(runs) / time.Since(start).Seconds() / 1e6
			b.ReportMetric(sealRate, "seal-MB/s")
			b.ReportMetric(osslRate, "openssl-MB/s")
			b.ReportMetric(sealRate/osslRate, "ratio")
		})
	}
}

func opensslPipeline(b *testing.B, msgFile, signerCert, signerKey, recipCert string) {
	sign := exec.Command("openssl", "cms", "-sign", "-md", "sha256", "-in", msgFile, "-signer", signerCert, "-inkey", signerKey)
	enc := exec.Command("openssl", "cms", "-encrypt", "-aes256", "-recip", recipCert, "-keyopt", "rsa_padding_mode:oaep", "-out", os.DevNull)
	pipe, err := sign.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	enc.Stdin = pipe
	var errs bytes.Buffer
	sign.Stderr, enc.Stderr = &errs, &errs
	if err := enc.Start(); err != nil {
		b.Fatal(err)
	}
	if err := sign.Run(); err != nil {
		b.Fatalf("openssl cms -sign: %v: %s", err, errs.String())
	}
	if err := enc.Wait(); err != nil {
		b.Fatalf("openssl cms -encrypt: %v: %s", err, errs.String())
	}
}

// BenchmarkMemory50MB measures the peak live heap while sealing and while
// opening a 50 MB message. The message is generated as it is read, so the
// figure is what Seal and Open themselves hold.
func BenchmarkMemory50MB(b *testing.B) {
	const size = 50 << 20
	w := newWorld(b)
	sealedFile := filepath.Join(w.dir, "sealed-50MB.eml")
	f, err := os.Create(sealedFile)
	if err != nil {
		b.Fatal(err)
	}
	if err := smime.Seal(f, &genReader{left: size}, w.sender.signer(), []*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.Run("Seal", func(b *testing.B) {
		for b.Loop() {
			peak := peakHeap(func() {
				if err := smime.Seal(io.Discard, &genReader{left: size}, w.sender.signer(), []*x509.Certificate{w.recipient.kp.Cert}, smime.OuterHeader{}); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		}
	})
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			peak := peakHeap(func() {
				f, err := os.Open(sealedFile)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				o, err := smime.OpenWith(f, *w.recipient.kp, w.roots, time.Now())
				if err != nil || len(o.Message) < size {
					b.Fatalf("Open: %v", err)
				}
			})
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		}
	})
}

// peakHeap runs fn and returns the highest heap-object bytes above the
// starting level, sampled every millisecond.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	if peak < base {
		return 0
	}
	return peak - base
}

// genReader yields left bytes of 76-character lines without holding them.
type genReader struct{ left int }

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), g.left)
	for i := range n {
		if (g.left-i)%78 == 0 || (g.left-i)%78 == 1 {
			p[i] = "\n\r"[(g.left-i)%78]
		} else {
			p[i] = 'A' + byte((g.left-i)%26)
		}
	}
	g.left -= n
	return n, nil
}
