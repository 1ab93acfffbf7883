package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
)

// timeoutErr is a net.Error that says it is a timeout, as a TLS or proxy
// layer might return.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestIsTimeout: a deadline is recognised however it is wrapped (errors.As,
// not a type assertion), and nothing else is taken for one.
func TestIsTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"deadline", os.ErrDeadlineExceeded, true},
		{"op error", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"wrapped net.Error", fmt.Errorf("greet: %w", timeoutErr{}), true},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", &net.OpError{Op: "read", Err: timeoutErr{}})), true},
		{"EOF", io.EOF, false},
		{"closed", net.ErrClosed, false},
		{"reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false},
	} {
		if got := isTimeout(tc.err); got != tc.want {
			t.Errorf("%s: isTimeout(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
